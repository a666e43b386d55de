"""The practical assessment's grader: ``grader`` (a scorecard per submission, from the
practical's lab.yml checks run by the check engine in grading mode) and ``audit`` (the
warnings beyond the seven requirements)."""
