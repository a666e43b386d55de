"""The day's commands: ``prepare``, ``deploy``, ``check``, ``report`` and ``cards``."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from workshop.cli.common import (
    CohortOption,
    InventoryOption,
    JsonOption,
    LabsOption,
    StudentOption,
    err,
    friendly_errors,
    inventory_arg,
    load_cohort,
    out,
    safe,
)
from workshop.errors import WorkshopError
from workshop.labcloud import spec


@friendly_errors
def prepare_command(
    cohort: CohortOption = spec.DEFAULT_COHORT,
    inventory: InventoryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Before class: the model, the base and lab images in the classroom registry (by
    digest), every lab's student copy; then site.yml preloads and delivers them."""
    from workshop.classroom import prepare
    from workshop.engine import docker_client

    report = prepare.prepare(load_cohort(cohort, inventory), docker_client())
    if as_json:
        typer.echo(json.dumps(asdict(report), indent=2))
        return
    table = Table(title=f"Published to the classroom registry of '{report.cohort}'")
    for column in ("image (by digest)", "uploaded", "seconds"):
        table.add_column(column)
    for item in report.published:
        table.add_row(item.reference, f"{item.bytes_uploaded / 1e6:.0f} MB", f"{item.seconds:.1f}")
    out.print(table)
    out.print(f"Model: {report.model}")
    out.print(f"Labs ready to deliver: {', '.join(report.labs)}")
    out.print(f"Preload list ({len(report.lab_images)} images) written to {report.written_to}")
    out.print(
        f"Next: ansible-playbook -i {inventory_arg(cohort, inventory)} site.yml "
        f"(preloads the images, delivers the labs). Done in {report.seconds:.0f}s."
    )


@friendly_errors
def deploy_command(
    lab: LabsOption = None,
    all_labs: Annotated[bool, typer.Option("--all", help="Every lab.")] = False,
    cohort: CohortOption = spec.DEFAULT_COHORT,
    inventory: InventoryOption = None,
    student: StudentOption = None,
    solution: Annotated[
        bool, typer.Option("--solution", help="Also put the reference solution in solution/.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Put labs in front of every student: ~/labs/<lab>/ (README, starter, inputs). Files
    a student already has are never replaced; the solution only with --solution."""
    from workshop.classroom import deploy

    if not lab and not all_labs:
        raise WorkshopError("name the labs to deliver: --lab NAME (repeatable) or --all")
    report = deploy.deploy(
        load_cohort(cohort, inventory),
        None if all_labs else lab,
        student=student,
        solution=solution,
    )
    if as_json:
        typer.echo(json.dumps(asdict(report), indent=2))
    else:
        table = Table(title=f"Labs delivered to cohort '{report.cohort}'")
        for column in ("host", "student", "lab", "files added", "already there", "result"):
            table.add_column(column)
        for row in report.rows:
            colour = {"delivered": "green", "up to date": "green"}.get(row.status, "red")
            added = str(row.added)
            if row.solution_added is not None:
                added += f" (+{row.solution_added} in solution/)"
            table.add_row(
                row.host,
                row.student,
                row.lab,
                added,
                str(row.present),
                f"[{colour}]{row.status}[/] {row.message}".strip(),
            )
        out.print(table)
        out.print(f"Done in {report.seconds:.0f}s.")
    failed = sorted(
        {
            f"{row.host} ({row.status})"
            for row in report.rows
            if row.status not in ("delivered", "up to date")
        }
    )
    if failed:
        err.print(f"[bold red]not delivered:[/] {', '.join(failed)}", highlight=False)
        raise typer.Exit(1)


VERDICT_COLOUR = {"passed": "green", "failed": "red", "error": "yellow"}


def check_table(report: Any) -> Table:
    """Student x check: a mark per check, the verdict, and the first problem's reason."""
    from workshop.labs import catalog

    lab = catalog.load(report.lab)
    table = Table(title=f"{lab.name} for cohort '{report.cohort}' ({lab.title})")
    table.add_column("student")
    table.add_column("host")
    for number, _ in enumerate(lab.checks, start=1):
        table.add_column(str(number), justify="center")
    table.add_column("result")
    table.add_column("first problem")
    marks = {"passed": "[green]✓[/]", "failed": "[red]✗[/]", "error": "[yellow]![/]"}
    for run in sorted(report.runs, key=lambda r: r.student or ""):
        by_name = {check.name: check for check in run.checks}
        cells = [
            marks.get(by_name[c.name].status, "?") if c.name in by_name else "-" for c in lab.checks
        ]
        # A verdict about the whole run (not started, unreachable, ...) says more than
        # the first check that failed because of it.
        whole = run.status not in ("passed", "failed", "error")
        problem = safe(
            run.message
            if whole
            else next((f"{c.name}: {c.message}" for c in run.checks if not c.passed), run.message)
        )
        colour = VERDICT_COLOUR.get(run.status, "red")
        table.add_row(
            run.student or "?", run.host or "?", *cells, f"[{colour}]{run.status}[/]", problem
        )
    table.caption = "  ".join(f"{n}={c.name}" for n, c in enumerate(lab.checks, start=1))
    return table


@friendly_errors
def check_command(
    lab: Annotated[str, typer.Option("--lab", help="The lab (directory or short name).")],
    cohort: CohortOption = spec.DEFAULT_COHORT,
    inventory: InventoryOption = None,
    student: StudentOption = None,
    workers: Annotated[int, typer.Option("--workers", help="VMs checked at once.")] = 8,
    watch: Annotated[
        int | None, typer.Option("--watch", help="Check again every N seconds (Ctrl-C stops).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Check each student's own work for a lab on their VM, as the student; exit 0 only
    when everyone passes. Results: state/<cohort>/checks/<lab>/<login>.json."""
    import time

    from rich.live import Live

    from workshop.classroom import check

    group = load_cohort(cohort, inventory)
    if watch:
        with Live(console=out, auto_refresh=False) as live:
            try:
                while True:
                    report = check.check_cohort(group, lab, student=student, workers=workers)
                    table = check_table(report)
                    table.title = f"{table.title}, every {watch}s (Ctrl-C stops)"
                    live.update(table, refresh=True)
                    time.sleep(watch)
            except KeyboardInterrupt:
                pass
    else:

        def progress(run: Any) -> None:
            err.print(
                f"[dim]-> {run.student}: {run.status} ({run.seconds:.0f}s)[/]", highlight=False
            )

        report = check.check_cohort(
            group, lab, student=student, workers=workers, on_result=None if as_json else progress
        )
        if as_json:
            typer.echo(json.dumps([run.to_dict() for run in report.runs], indent=2))
        else:
            out.print(check_table(report))
            out.print(f"Checked {len(report.runs)} students in {report.seconds:.0f}s.")
    stuck = sorted(f"{run.student} ({run.status})" for run in report.runs if not run.passed)
    if stuck:
        err.print(f"[bold red]not passed:[/] {', '.join(stuck)}", highlight=False)
        raise typer.Exit(1)


@friendly_errors
def report_command(
    cohort: CohortOption = spec.DEFAULT_COHORT,
    inventory: InventoryOption = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write the report as one self-contained page.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The cohort at a glance: provisioning readiness and every lab's checks per student."""
    from workshop.classroom import report

    found = report.build(load_cohort(cohort, inventory))
    if as_json:
        typer.echo(json.dumps(found.to_dict(), indent=2))
    if html:
        path = report.write_html(found, html)
        err.print(f"Report: {path.resolve()}", highlight=False)
    if as_json or html:
        return
    table = Table(title=f"Cohort '{found.cohort}' at {found.generated_at}")
    for column in ("student", "host", "ready", *(lab.name.split("-")[0] for lab in found.labs)):
        table.add_column(column)
    for row in found.students:
        ready = "[green]ok[/]" if row.ready == "ok" else f"[red]{row.ready}[/]"
        verdicts = [
            f"[{VERDICT_COLOUR.get(row.labs[lab.name], 'yellow')}]{row.labs[lab.name]}[/]"
            for lab in found.labs
        ]
        table.add_row(row.login, row.host, ready, *verdicts)
    table.caption = "  ".join(lab.name for lab in found.labs)
    out.print(table)


@friendly_errors
def cards_command(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for the cards (0700).")],
    cohort: CohortOption = spec.DEFAULT_COHORT,
    inventory: InventoryOption = None,
    student: StudentOption = None,
) -> None:
    """A printable login card per student (HTML and PDF, and cards.pdf with all): VM,
    login, password, classroom and cloud registry logins, a QR code. Files are 0600."""
    from workshop.classroom import cards

    made = cards.write(load_cohort(cohort, inventory), out_dir, student=student)
    out.print(
        f"{len(made.students)} cards in {made.directory} (0600; they hold passwords): "
        f"{', '.join(Path(name).name for name in made.files if name.endswith('.pdf'))}"
    )
