"""The labs as data: offline base images, lab definitions (lab.yml), builds and handouts."""
