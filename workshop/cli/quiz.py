"""``workshop quiz handout|grade``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from workshop.cli.common import (
    JsonOption,
    err,
    friendly_errors,
    out,
    safe,
)

app = typer.Typer(help="The module's quiz: the student handout, and grading the answers.")


@app.command("handout")
@friendly_errors
def quiz_handout(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for QUIZ.md and answers.yml.")],
) -> None:
    """Write the quiz for students: QUIZ.md (the questions, no key) and answers.yml (a
    blank per question, the file they hand in)."""
    from workshop.labs import quiz

    written = quiz.write_handout(out_dir)
    out.print(f"Quiz handout: {', '.join(str(path) for path in written)}", highlight=False)


@app.command("grade")
@friendly_errors
def quiz_grade(
    files: Annotated[list[Path], typer.Argument(help="Students' answers.yml files.")],
    details: Annotated[
        bool, typer.Option("--details", help="Every question's verdict, per student.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Score answer files against the key (pass at 70%). Short answers that did not score
    are listed with the words they named and missed, for review. Exit 0 when every file
    was graded (whatever its score), 1 when one could not be."""
    from workshop.labs import quiz

    results = quiz.grade_files(files)
    if as_json:
        typer.echo(json.dumps([result.to_dict() for result in results], indent=2))
    else:
        table = Table(title="Quiz", title_justify="left")
        for column in ("student", "file", "score", "result"):
            table.add_column(column)
        for result in results:
            verdict = (
                "[green]passed[/]"
                if result.passed
                else "[red]not passed[/]"
                if result.status == quiz.GRADED
                else f"[yellow]not graded[/]: {safe(result.message)}"
            )
            score = f"{result.score}/{result.total}" if result.status == quiz.GRADED else "-"
            table.add_row(safe(result.student or "-"), safe(result.file), score, verdict)
        out.print(table)
        for result in results:
            shown = [a for a in result.answers if details or a.review]
            if shown or result.warnings:
                out.print(f"[bold]{safe(result.student)}[/] ({safe(result.file)})", highlight=False)
            for answer in shown:
                mark = "[green]✓[/]" if answer.correct else "[red]✗[/]"
                line = f"  {mark} {answer.id}. {safe(answer.given) or '(no answer)'}"
                if answer.kind == "choice" and not answer.correct:
                    line += f" (key: {answer.expected}{'; ' + answer.note if answer.note else ''})"
                if answer.kind == "short" and answer.given:
                    named = safe(", ".join(answer.matched)) or "nothing"
                    wanted = "; ".join(" / ".join(group) for group in answer.missing)
                    line += f"\n      named: {named}" + (f"; not named: {wanted}" if wanted else "")
                    if answer.review:
                        line += "\n      [yellow]review[/]: model answer: " + answer.expected
                out.print(line, highlight=False)
            for warning in result.warnings:
                out.print(f"  [yellow]warning[/]: {safe(warning)}", highlight=False)
    failed = [result.file for result in results if result.status != quiz.GRADED]
    if failed:
        err.print(f"[bold red]not graded:[/] {safe(', '.join(failed))}", highlight=False)
        raise typer.Exit(1)
