"""What every command shares: the consoles, the common options, turning a problem the
user can fix into one line on stderr, and finding a cohort."""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import docker.errors
import typer
from rich.console import Console
from rich.markup import escape

from registries.base import RegistryError
from workshop.errors import WorkshopError

# soft_wrap: long paths and ssh commands stay on one line, ready to copy.
# Off a terminal (CI logs, pipes), wide enough that no table column is cut short.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])
# The cloud SDKs' own loggers: their warnings (DefaultAzureCredential lists every
# credential it tried, twice) would bury the kit's one-line error. --verbose shows them.
SDK_LOGGERS = ("azure", "google", "botocore", "boto3", "urllib3")

CohortOption = Annotated[
    str, typer.Option("--cohort", help="Cohort name (a DNS label, e.g. nov-2026).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def friendly_errors(command: F) -> F:
    """Turn a WorkshopError or RegistryError into 'error: <message>' on stderr, exit 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (WorkshopError, RegistryError) as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(2) from None
        except docker.errors.DockerException as exc:
            # An engine refusal we did not foresee: one line, and where to look next.
            reason = getattr(exc, "explanation", None) or str(exc)
            err.print(
                f"[bold red]error:[/] the Docker engine refused: {reason} "
                "(see /var/log/dockerd.log; rerun the command once the engine is healthy)",
                highlight=False,
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


InventoryOption = Annotated[
    Path | None,
    typer.Option(
        "--inventory",
        help="A real cohort's inventory (default: the lab cloud's state/<cohort>/inventory.yml).",
    ),
]


def load_cohort(name: str, inventory: Path | None) -> Any:
    from workshop import cohort

    return cohort.load(name, inventory)


def inventory_arg(cohort: str, inventory: Path | None) -> str:
    from workshop import cohort as cohorts

    return str(cohorts.inventory_path(cohort, inventory))


LabsOption = Annotated[
    list[str] | None,
    typer.Option("--lab", help="A lab (directory or short name); repeatable."),
]


StudentOption = Annotated[str | None, typer.Option("--student", help="Only this student.")]


def quiet_sdks(verbose: bool) -> None:
    """The cloud SDKs' log lines on stderr only with --verbose (then from INFO up)."""
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.CRITICAL)
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")


# Terminal control sequences: OSC (a window title, a hyperlink, the clipboard), CSI
# (cursor moves, colours, clearing the screen), other ESC pairs, and the bare C0/C1
# controls (a carriage return that rewrites the line) but tab and newline.
_CONTROLS = re.compile(
    r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC ... BEL or ST
    r"|\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b[@-_]?"  # other ESC pairs
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"  # C0 and C1 controls but tab and newline
)


def safe(text: object) -> str:
    """Text a student controls (a build's output, an answer, a name, a path), shown as it
    is: never read as rich markup (a "[/]" in it raised MarkupError and lost every
    scorecard; "[green]v[/]" faked a mark) and without terminal control sequences."""
    return escape(_CONTROLS.sub("", str(text)))
