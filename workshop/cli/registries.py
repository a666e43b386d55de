"""``workshop registries create|delete``: cohort repositories and per-student credentials."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from registries.base import RegistryError
from workshop.cli.common import (
    CohortOption,
    JsonOption,
    err,
    friendly_errors,
    out,
)
from workshop.labcloud import spec

app = typer.Typer(
    help="Cohort repositories and per-student credentials in ECR, Artifact Registry, ACR."
)


RegistriesOption = Annotated[
    str | None,
    typer.Option("--registries", help="Comma-separated: ecr, gcr (Artifact Registry), acr, local."),
]


ConfigOption = Annotated[
    str | None, typer.Option("--config", help="Registries file (default registries.yml).")
]


def _open_registries(names: list[str], config_file: str | None, cohort: str) -> tuple[dict, list]:
    """Adapters for ``names``; those that cannot open are returned as (name, error)."""
    from registries import config  # the cloud SDKs load only for registry commands
    from workshop.labcloud.registry import default_local

    settings = config.load(config_file)
    opened, failed = {}, []
    for name in names:
        try:
            opened[name] = config.open_registry(name, settings, cohort, default_local=default_local)
        except RegistryError as exc:
            failed.append((name, str(exc)))
    return opened, failed


@app.command("create")
@friendly_errors
def registries_create(
    cohort: CohortOption = spec.DEFAULT_COHORT,
    registries: RegistriesOption = "local",
    config_file: ConfigOption = None,
    ci: Annotated[
        str | None,
        typer.Option(
            "--ci",
            help="github:OWNER/REPO ({login} for each student's own, e.g. "
            "github:acme-ml/{login}-docker): let its GitHub Actions on main push to the "
            "student's repositories with OpenID Connect (no stored key).",
        ),
    ] = None,
    image_mb: Annotated[
        float,
        typer.Option(
            "--image-mb",
            help="What each student's push uploads, in MB: their image less the shared base "
            "layers (the registry's tier is checked against the class pushing at once).",
        ),
    ] = 200.0,
    as_json: JsonOption = False,
) -> None:
    """Give every student their repositories and credentials (written 0600 to their card)."""
    from registries import config
    from workshop import registry_access as cohort_access

    names = config.parse_names(registries or "local")
    wanted = config.load(config_file).student_repositories
    if ci:  # a malformed --ci is refused before any registry is touched
        cohort_access.ci_repositories(ci, cohort_access.roster(cohort))
    opened, failed = _open_registries(names, config_file, cohort)
    for note in cohort_access.capacity_notes(cohort, opened, image_mb):
        err.print(f"[yellow]warning:[/] {note}", highlight=False)
    results = cohort_access.create(cohort, opened, wanted, ci)
    results += [cohort_access.StudentAccess("", name, error=error) for name, error in failed]
    if as_json:
        typer.echo(json.dumps([asdict(result) for result in results], indent=2))
    else:
        table = Table(title=f"Registry access for cohort '{cohort}'")
        columns = ["student", "registry", "repositories", "login", "expires"]
        for column in [*columns, *(["CI trusts"] if ci else []), "result"]:
            table.add_column(column)
        for result in results:
            table.add_row(
                result.student or "(all)",
                result.registry,
                "\n".join(result.repositories),
                result.login,
                result.expires or "-",
                *([result.ci or "-"] if ci else []),
                "[green]ok[/]" if result.ok else "[red]failed[/]",
            )
        out.print(table)
        if any(result.ok for result in results):
            out.print(
                f"Credentials: {spec.paths(cohort).root}/students/<login>/"
                f"{cohort_access.CARD_FILE} (0600)"
            )
        if any(result.ci for result in results):
            out.print(
                f"The workflow's repository variables: {spec.paths(cohort).root}/students/"
                f"<login>/{cohort_access.CI_FILE} (gh variable set lines; run it, or hand it "
                "to the student)"
            )
    _report_failures([(r.student, r.registry, r.error) for r in results if r.error])


@app.command("delete")
@friendly_errors
def registries_delete(
    cohort: CohortOption = spec.DEFAULT_COHORT,
    registries: RegistriesOption = None,
    config_file: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete the cohort's repositories (and images) and revoke its credentials. Idempotent."""
    from registries import config
    from workshop import registry_access as cohort_access

    names = (
        config.parse_names(registries) if registries else cohort_access.recorded_registries(cohort)
    )
    if not names:
        out.print(f"Cohort '{cohort}': no registry access recorded; nothing to delete.")
        return
    opened, failed = _open_registries(names, config_file, cohort)
    results = cohort_access.delete(cohort, opened)
    results += [cohort_access.Cleanup(name, error=error) for name, error in failed]
    if as_json:
        typer.echo(json.dumps([asdict(result) for result in results], indent=2))
    else:
        table = Table(title=f"Registry cleanup for cohort '{cohort}'")
        columns = ("registry", "repositories deleted", "credentials revoked", "CI trust removed")
        for column in (*columns, "result"):
            table.add_column(column)
        for result in results:
            table.add_row(
                result.registry,
                str(len(result.repositories)),
                str(len(result.credentials)),
                str(len(result.ci)),
                "[green]ok[/]" if result.ok else "[red]failed[/]",
            )
        out.print(table)
    _report_failures([("", r.registry, r.error) for r in results if r.error])


def _report_failures(failures: list[tuple[str, str, str | None]]) -> None:
    """Each distinct error once, in full, then exit 1 naming who failed."""
    if not failures:
        return
    for error in dict.fromkeys(error for _, _, error in failures):
        err.print(f"[red]{error}[/]", highlight=False)
    who = sorted(
        {f"{registry}{'/' + student if student else ''}" for student, registry, _ in failures}
    )
    err.print(f"[bold red]failed:[/] {', '.join(who)}", highlight=False)
    raise typer.Exit(1)
