"""The ``workshop`` command: option parsing and rendering only, one module per command
group (``cloud``, ``registries``, ``labs``, ``classroom``, ``grading``, ``quiz``), joined here.

Each command calls one library function and renders what it returns; problems the user
can fix arrive as ``WorkshopError`` and are printed as one line, without a traceback.
"""

from __future__ import annotations

from typing import Annotated

import typer

from workshop.cli import classroom, cloud, common, grading, labs, quiz, registries

app = typer.Typer(
    help="Run hands-on 'Containerization with Docker for ML' cohort workshops.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Also show the cloud SDKs' own log lines.")
    ] = False,
) -> None:
    """Run hands-on 'Containerization with Docker for ML' cohort workshops."""
    common.quiet_sdks(verbose)


app.add_typer(cloud.app, name="cloud")
app.add_typer(registries.app, name="registries")
app.add_typer(labs.images_app, name="images")
app.add_typer(labs.labs_app, name="labs")
app.command("prepare")(classroom.prepare_command)
app.command("deploy")(classroom.deploy_command)
app.command("check")(classroom.check_command)
app.command("report")(classroom.report_command)
app.command("grade")(grading.grade_command)
app.add_typer(quiz.app, name="quiz")
app.command("cards")(classroom.cards_command)
