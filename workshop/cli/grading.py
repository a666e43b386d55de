"""``workshop grade``: the practical's scorecards, for submissions or a whole cohort."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from workshop.cli.common import (
    InventoryOption,
    JsonOption,
    StudentOption,
    err,
    friendly_errors,
    load_cohort,
    out,
    safe,
)
from workshop.errors import WorkshopError


def grade_table(cards: list[Any]) -> Table:
    """Submission x requirement: a mark per requirement, the score, and why."""
    from workshop.grading import grader

    names = [check.name for check in grader.requirements()]
    table = Table(title=f"Practical assessment: {len(cards)} submission(s)")
    table.add_column("submission")
    for number, _ in enumerate(names, start=1):
        table.add_column(str(number), justify="center")
    for column in ("score", "size limit", "warnings", "first problem"):
        table.add_column(column)
    marks = {"passed": "[green]✓[/]", "failed": "[red]✗[/]", "error": "[yellow]![/]"}
    for card in cards:
        by_name = {result.name: result for result in card.requirements}
        cells = [marks.get(by_name[n].status, "?") if n in by_name else "-" for n in names]
        if card.status != grader.GRADED:
            score, problem = f"[red]{card.status}[/]", safe(card.message)
        else:
            colour = "green" if card.score == card.total else "red"
            score = f"[{colour}]{card.score}/{card.total}[/]"
            problem = next(
                (safe(f"{r.name}: {r.message}") for r in card.requirements if not r.passed), ""
            )
        who = safe(f"{card.student} ({card.source})" if card.student else card.source)
        table.add_row(who, *cells, score, card.size_limit or "-", str(len(card.warnings)), problem)
    table.caption = "  ".join(f"{n}={name}" for n, name in enumerate(names, start=1))
    return table


@friendly_errors
def grade_command(
    sources: Annotated[
        list[str] | None,
        typer.Argument(help="Submissions: directories or git URLs (or use --cohort)."),
    ] = None,
    cohort: Annotated[
        str | None,
        typer.Option("--cohort", help="Grade every student's ~/labs/practical/ on their VM."),
    ] = None,
    inventory: InventoryOption = None,
    student: StudentOption = None,
    jobs: Annotated[int, typer.Option("--jobs", help="Submissions graded at once.")] = 2,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the scorecards as one HTML page.")
    ] = None,
    health_timeout: Annotated[
        float, typer.Option("--health-timeout", help="Seconds a service may take to answer.")
    ] = 60,
    build_timeout: Annotated[
        float, typer.Option("--build-timeout", help="Seconds a build may take.")
    ] = 600,
    trust_extra_ca: Annotated[
        bool | None,
        typer.Option(
            "--trust-extra-ca/--no-trust-extra-ca",
            help="Base images trust the extra CA bundle (default: WORKSHOP_BASES_TRUST_EXTRA_CA).",
        ),
    ] = None,
    details: Annotated[
        bool,
        typer.Option("--details", help="Every requirement's verdict and evidence, per submission."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Grade practical-assessment submissions: the seven requirements with their evidence,
    and warnings beyond them. Exit 0 when every submission was graded (whatever its
    score), 1 when one could not be."""
    from workshop.classroom import grade as cohort_grade
    from workshop.classroom import report
    from workshop.engine import docker_client
    from workshop.grading import grader

    if bool(sources) == bool(cohort):
        raise WorkshopError(
            "give the submissions to grade (directories or git URLs) or --cohort C, not both"
        )
    limits = grader.Limits(health_timeout=health_timeout, build_timeout=build_timeout)

    def progress(card: Any) -> None:
        if not as_json:
            shown = safe(card.student or card.source)
            err.print(
                f"[dim]-> {shown}: {card.score}/{card.total} ({card.seconds:.0f}s)[/]"
                if card.status == grader.GRADED
                else f"[dim]-> {shown}: {card.status}: {safe(card.message)}[/]",
                highlight=False,
            )

    if cohort:
        group = load_cohort(cohort, inventory)
        needs_engine = any(person.practical_repo for person in group.students)
        cards = cohort_grade.grade_cohort(
            group,
            docker_client() if needs_engine else None,
            student=student,
            jobs=jobs,
            limits=limits,
            on_card=progress,
            trust_extra_ca=trust_extra_ca,
        )
    else:
        cards = grader.grade_sources(
            docker_client(),
            list(sources or []),
            jobs=jobs,
            limits=limits,
            trust_extra_ca=trust_extra_ca,
            on_card=progress,
        )
    if as_json:
        typer.echo(json.dumps([card.to_dict() for card in cards], indent=2))
    else:
        out.print(grade_table(cards))
        marks = {"passed": "[green]✓[/]", "failed": "[red]✗[/]", "error": "[yellow]![/]"}
        for card in cards:
            if (details or len(cards) == 1) and card.requirements:
                out.print(
                    f"[bold]{safe(card.student or card.source)}[/]: {safe(card.message)}",
                    highlight=False,
                )
                for number, result in enumerate(card.requirements, start=1):
                    mark = marks.get(result.status, "?")
                    out.print(
                        f"  {mark} {number}. {safe(result.name)}: {safe(result.message)}",
                        highlight=False,
                    )
            if card.warnings:
                out.print(
                    f"[bold]{safe(card.student or card.source)}[/]: warnings", highlight=False
                )
                for warning in card.warnings:
                    out.print(
                        f"  [yellow]{safe(warning.code)}[/]: {safe(warning.message)}",
                        highlight=False,
                    )
    if html:
        from workshop import state

        state.write_file(html, report.render_grades_html(cards))
        err.print(f"Scorecards: {html.resolve()}", highlight=False)
    failed = [card.student or card.source for card in cards if card.status != grader.GRADED]
    if failed:
        err.print(f"[bold red]not graded:[/] {safe(', '.join(failed))}", highlight=False)
        raise typer.Exit(1)
