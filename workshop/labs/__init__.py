"""The labs as data: the engine that reads the course content (``catalog``: lab.yml;
``handout``: a student's copy and its solution; ``bases``: the offline base images;
``quiz``; ``classifier_model``: Activity 1's ONNX export). The content itself (pages,
starters, reference solutions, base recipes, the quiz's questions) lives apart, in the
top-level ``labs/`` folder, or wherever ``WORKSHOP_LABS_DIR`` points."""

from __future__ import annotations

import os
from pathlib import Path

from workshop.state import REPO_ROOT

LABS_DIR = Path(os.environ.get("WORKSHOP_LABS_DIR") or REPO_ROOT / "labs")
