"""``python -m workshop.cli``: the ``workshop`` command."""

from workshop.cli import app

app()
