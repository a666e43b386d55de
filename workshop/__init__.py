"""Kit for running hands-on "Containerization with Docker for ML" cohort workshops."""

__version__ = "0.1.0"
