"""Activity 1 starting point: the classifier service (see ../../README.md)."""
