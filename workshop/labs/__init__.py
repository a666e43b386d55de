"""The labs: offline base images, lab definitions (lab.yml), builds and their checks."""
