"""What a student wrote reaches the instructor's terminal as text: never read as rich
markup (a "[/]" raised MarkupError and lost every scorecard; "[green]✓[/]" faked a mark)
and without terminal control sequences (an OSC title, a screen clear, a carriage return)."""

from __future__ import annotations

import subprocess
import sys

import yaml
from rich.console import Console

from workshop import checking
from workshop.cli.common import safe
from workshop.cli.grading import grade_table
from workshop.grading import grader

HOSTILE = "build failed: [/] [green]✓ all passed[/] \x1b]0;owned\x07\x1b[2J\rdone"


def rendered(table: object) -> str:
    console = Console(width=300, force_terminal=False, color_system=None)
    with console.capture() as captured:
        console.print(table)
    return captured.get()


def test_markup_and_control_sequences_are_shown_as_text():
    text = safe(HOSTILE)
    assert "\x1b" not in text
    assert "\r" not in text
    assert "\x07" not in text
    shown = rendered(text)
    assert "[/]" in shown
    assert "[green]✓ all passed[/]" in shown


def test_a_scorecard_whose_message_holds_markup_renders(tmp_path):
    result = checking.CheckResult("multi-stage build", "multi_stage", "failed", HOSTILE)
    card = grader.Scorecard(
        source=f"{tmp_path}/[red]sub[/]", status=grader.GRADED, score=0, total=1
    )
    card.requirements = [result]
    shown = rendered(grade_table([card]))
    assert "[green]✓ all passed[/]" in shown, "the student's text is not a mark"
    assert "[red]sub[/]" in shown
    assert "\x1b" not in shown


def test_a_quiz_answer_cannot_fake_a_mark_or_reach_the_terminal(tmp_path):
    sheet = tmp_path / "student09.yml"
    answer = "[green]✓[/] correct \x1b]0;owned\x07 [/]"
    sheet.write_text(yaml.safe_dump({"student": "student09 [/]", "answers": {1: answer}}))
    command = [sys.executable, "-m", "workshop.cli", "quiz", "grade", str(sheet), "--details"]
    shown = subprocess.run(command, capture_output=True, text=True, check=False)
    assert shown.returncode == 0, shown.stderr
    assert "MarkupError" not in shown.stderr
    assert "[green]✓[/] correct" in shown.stdout
    assert "\x1b]0;owned" not in shown.stdout
    assert "student09 [/]" in shown.stdout
