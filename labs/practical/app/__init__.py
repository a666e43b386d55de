"""The practical assessment's reference solution: a wine-cultivar classifier service."""
