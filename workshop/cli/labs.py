"""``workshop images build-bases`` and ``workshop labs list|prepare-model|build``."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from workshop.cli.common import (
    JsonOption,
    friendly_errors,
    out,
)

images_app = typer.Typer(help="Offline stand-ins for the official images the labs start from.")
labs_app = typer.Typer(help="The labs: list them, prepare the model, build their images.")


@images_app.command("build-bases")
@friendly_errors
def images_build_bases(
    cohort: Annotated[
        str | None,
        typer.Option("--cohort", help="Also publish them to this cohort's classroom registry."),
    ] = None,
    only: Annotated[
        str | None, typer.Option("--only", help="Comma-separated: python, redis, postgres, nginx.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if up to date.")] = False,
    trust_extra_ca: Annotated[
        bool | None,
        typer.Option(
            "--trust-extra-ca/--no-trust-extra-ca",
            help="The images trust the extra CA bundle (default: WORKSHOP_BASES_TRUST_EXTRA_CA).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Build python:3.11-slim, redis:7, postgres:15 and nginx:1.22 equivalents offline."""
    from workshop.engine import docker_client
    from workshop.labs import bases

    names = [name.strip() for name in only.split(",")] if only else None
    results = bases.build_bases(
        docker_client(),
        names,
        cohort=cohort,
        force=force,
        extra_ca=bases.trusted_bundle(trust_extra_ca),
    )
    if as_json:
        typer.echo(json.dumps([asdict(result) for result in results], indent=2))
        return
    table = Table(title="Base images (Debian 12 packages, built offline)")
    for column in ("stands in for", "local tag", "size", "build", "published as"):
        table.add_column(column)
    for result in results:
        table.add_row(
            result.official,
            result.local,
            f"{result.size_mb:.0f} MB",
            f"built in {result.seconds:.0f}s" if result.built else "up to date",
            result.pushed or "-",
        )
    out.print(table)


@labs_app.command("list")
@friendly_errors
def labs_list(as_json: JsonOption = False) -> None:
    """The labs, what each one teaches and the images it builds."""
    from workshop.checking import kinds
    from workshop.labs import catalog

    labs = catalog.all_labs()
    # Each lab's checks read by their kinds' models: a broken lab.yml is named here, and
    # the JSON shows every setting of each check, defaults included.
    checks = {lab.name: kinds.parse(lab) for lab in labs}
    if as_json:
        listed = [
            {
                **lab.model_dump(mode="json"),
                "checks": [check.model_dump(mode="json") for check in checks[lab.name]],
            }
            for lab in labs
        ]
        typer.echo(json.dumps(listed, indent=2))
        return
    table = Table(title="Labs")
    for column in ("lab", "lesson", "title", "images"):
        table.add_column(column)
    for lab in labs:
        images_built = ", ".join(image.name for image in lab.images) or "-"
        table.add_row(lab.name, lab.lesson, lab.title, images_built)
    out.print(table)


@labs_app.command("prepare-model")
@friendly_errors
def labs_prepare_model(
    force: Annotated[bool, typer.Option("--force", help="Export again.")] = False,
) -> None:
    """Export EfficientNet-Lite0 to ONNX for the classifier (torch in .venv-model only)."""
    from workshop.labs import classifier_model

    result = classifier_model.prepare(force=force)
    verb = f"exported in {result.seconds:.0f}s" if result.prepared else "up to date"
    out.print(f"{result.path} ({result.size_mb:.1f} MB): {verb}")


@labs_app.command("build")
@friendly_errors
def labs_build(
    lab: Annotated[str, typer.Argument(help="Lab directory or short name (image-classifier).")],
    base_registry: Annotated[
        str | None,
        typer.Option(
            "--base-registry", help="Take base images from REGISTRY/library/ instead of local."
        ),
    ] = None,
) -> None:
    """Build a lab's images on the offline stand-ins of their official bases."""
    from workshop.engine import docker_client
    from workshop.labs import catalog

    client = docker_client()
    found = catalog.load(lab)
    sizes = {}
    for image in found.images:
        tag, seconds = catalog.build(client, found, image, base_registry=base_registry)
        sizes[image.name] = client.images.get(tag).attrs["Size"] / 1e6
        limit = f" (limit {image.size_limit_mb:.0f} MB)" if image.size_limit_mb else ""
        out.print(f"{tag}: {sizes[image.name]:.0f} MB{limit}, built in {seconds:.0f}s")
    if found.compare:
        before, after = found.compare
        reduction = 100 * (1 - sizes[after] / sizes[before])
        out.print(
            f"{before} {sizes[before]:.0f} MB -> {after} {sizes[after]:.0f} MB: "
            f"{reduction:.0f}% smaller"
        )
