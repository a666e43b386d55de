#!/usr/bin/env python3
"""Push the lab images to every named registry at once, and check they arrived identical.

    python scripts/push_all.py --registries ecr,gcr,acr [--images ...] [--cohort NAME]
                               [--dry-run] [--json] [--config registries.yml]

With no --registries it pushes to ``local`` (the lab cloud's classroom registry). Exit
status: 0 all pushed and verified, 1 a push failed (the others still ran), 2 bad input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import docker
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn
from rich.table import Table

from registries import config, push
from registries.base import Registry, RegistryError
from workshop.errors import WorkshopError
from workshop.labcloud.registry import default_local
from workshop.labs import catalog

# Wide enough off a terminal (CI logs, pipes) that no column is cut short.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)


def render(results: list[push.PushResult], dry_run: bool) -> None:
    title = "Push plan (dry run: nothing was contacted)" if dry_run else "Pushes"
    table = Table(title=title)
    columns = ["registry", "repository", "tag"]
    if not dry_run:
        columns += ["digest", "bytes uploaded", "layers skipped", "seconds"]
    for column in [*columns, "result"]:
        table.add_column(column)
    for result in results:
        row = [result.registry, result.repository, result.tag]
        if not dry_run:
            digest = (result.digest or "-").removeprefix("sha256:")[:12]
            row += [
                digest,
                f"{result.bytes_uploaded:,}",
                f"{result.layers_skipped}/{result.layers_skipped + result.layers_pushed}",
                f"{result.seconds:.1f}",
            ]
        if not result.ok:
            verdict = "[red]failed[/]"
        else:
            verdict = "[green]ok (already there)[/]" if result.already_there else "[green]ok[/]"
        table.add_row(*row, verdict)
    out.print(table)
    # Errors in full below the table, once each: a table column would cut them short.
    for error in dict.fromkeys(result.error for result in results if result.error):
        err.print(f"[red]{error}[/]", highlight=False)


def main(
    registries: Annotated[
        str, typer.Option(help="Comma-separated: ecr, gcr (Artifact Registry), acr, local.")
    ] = "local",
    images: Annotated[
        list[str] | None,
        typer.Option(
            "--images",
            help="LOCAL[=REPOSITORY:TAG], repeatable; default: the lab images.",
        ),
    ] = None,
    cohort: Annotated[
        str | None,
        typer.Option(help="Put repositories under COHORT/ (and use its classroom registry)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check and show the plan.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="Registries file (default registries.yml).")
    ] = None,
) -> None:
    try:
        names = config.parse_names(registries)
        settings = config.load(config_file)
        engine = docker.from_env()
        if images:
            sources = [push.parse_image(spec) for spec in images]
        else:
            sources = catalog.lab_images(engine)
    except (RegistryError, WorkshopError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None

    opened: dict[str, Registry] = {}
    failed_to_open: list[push.PushResult] = []
    for name in names:
        try:
            opened[name] = config.open_registry(name, settings, cohort, default_local=default_local)
        except RegistryError as exc:  # this registry is out; the others still run
            failed_to_open += [
                push.PushResult(
                    name, push.target_repository(source, cohort or ""), source.tag, error=str(exc)
                )
                for source in sources
            ]

    if dry_run:
        results = push.plan(opened, sources, cohort or "") + failed_to_open
    else:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[status]}"),
            console=err,
            disable=as_json or not err.is_terminal,
        ) as bars:
            tasks: dict[str, TaskID] = {}

            def progress(key: str, status: str, done: int, total: int) -> None:
                if key not in tasks:
                    tasks[key] = bars.add_task(key, total=None, status="")
                bars.update(tasks[key], completed=done, total=total or None, status=status)

            try:
                results = push.push_all(
                    engine, opened, sources, prefix=cohort or "", progress=progress
                )
            except RegistryError as exc:
                err.print(f"[bold red]error:[/] {exc}", highlight=False)
                raise typer.Exit(2) from None
        results += failed_to_open

    if as_json:
        out.print_json(json.dumps({"dry_run": dry_run, "results": [r.as_dict() for r in results]}))
    else:
        render(results, dry_run)
    failed = sorted({result.registry for result in results if not result.ok})
    if failed:
        err.print(f"[bold red]failed:[/] {', '.join(failed)}", highlight=False)
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
