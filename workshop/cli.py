"""The ``workshop`` command: option parsing and rendering only.

Each command calls one library function and renders what it returns; problems the user
can fix arrive as ``WorkshopError`` and are printed as one line, without a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, TypeVar

import docker.errors
import typer
from rich.console import Console
from rich.table import Table

from registries.base import RegistryError
from workshop import cloudvms, state
from workshop.errors import WorkshopError
from workshop.labcloud import cloud, images

app = typer.Typer(
    help="Run hands-on 'Containerization with Docker for ML' cohort workshops.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
cloud_app = typer.Typer(help="The lab cloud: a simulated cohort of student VMs on this machine.")
app.add_typer(cloud_app, name="cloud")
registries_app = typer.Typer(
    help="Cohort repositories and per-student credentials in ECR, Artifact Registry, ACR."
)
app.add_typer(registries_app, name="registries")
images_app = typer.Typer(help="Offline stand-ins for the official images the labs start from.")
app.add_typer(images_app, name="images")
labs_app = typer.Typer(help="The labs: list them, prepare the model, build their images.")
app.add_typer(labs_app, name="labs")
quiz_app = typer.Typer(help="The module's quiz: the student handout, and grading the answers.")
app.add_typer(quiz_app, name="quiz")

# soft_wrap: long paths and ssh commands stay on one line, ready to copy.
# Off a terminal (CI logs, pipes), wide enough that no table column is cut short.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])

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


def render_cloud(report: cloud.CloudReport) -> None:
    """The VM table, the registry line and how to log in."""
    table = Table(title=f"Lab cloud '{report.cohort}' ({report.distro})")
    for column in ("VM", "IP", "SSH ok", "systemd"):
        table.add_column(column)
    for vm in report.vms:
        ok = "[green]yes[/]" if vm.ssh_ok else "[red]no[/]"
        healthy = vm.systemd in ("running", "degraded")
        table.add_row(vm.hostname, vm.ip, ok, vm.systemd if healthy else f"[red]{vm.systemd}[/]")
    out.print(table)
    if report.registry:
        out.print(
            f"Classroom registry: https://{report.registry.address} ({report.registry.health}); "
            f"credentials in {report.state_dir}/registry/credentials.json (0600)"
        )
    else:
        out.print("[red]Classroom registry: missing[/]")


@cloud_app.command("up")
@friendly_errors
def cloud_up(
    students: Annotated[int, typer.Option("--students", help="Number of student VMs.")] = 2,
    distro: Annotated[
        str, typer.Option("--distro", help=f"One of: {', '.join(images.DISTROS)}.")
    ] = images.DEFAULT_DISTRO,
    cohort: CohortOption = cloud.DEFAULT_COHORT,
    profile: Annotated[
        list[str] | None,
        typer.Option(
            "--profile",
            help="Make the VMs look like a real cloud image (repeatable): "
            + ", ".join(cloud.PROFILES),
        ),
    ] = None,
    as_json: JsonOption = False,
    provider: Annotated[
        str,
        typer.Option(
            "--provider",
            help="lab (this machine's lab cloud), or aws, gcp or azure (VMs from --config).",
        ),
    ] = "lab",
    config: Annotated[
        Path | None,
        typer.Option("--config", help="The cohort file for a cloud provider (README)."),
    ] = None,
    ssh_timeout: Annotated[
        float, typer.Option("--ssh-timeout", help="Seconds a cloud VM may take to answer SSH.")
    ] = 300.0,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="A cloud provider: check the quota and print the cost; make nothing."
        ),
    ] = False,
) -> None:
    """Start (or complete) a lab cloud of N student VMs and the classroom registry, or a
    cohort's VMs in a cloud (--provider aws|gcp|azure --config cohort.yml)."""
    if provider != "lab":
        cloud_vms_up(cohort, students, provider, config, ssh_timeout, as_json, dry_run)
        return
    spec = cloud.validate_spec(cohort, students, distro, profile)
    report = cloud.up(spec, progress=lambda msg: err.print(f"[dim]-> {msg}[/]", highlight=False))
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for image in report.images:
            verb = f"built in {image.seconds:.0f}s" if image.built else "reused"
            err.print(f"[dim]image {image.tag}: {verb}[/]", highlight=False)
        render_cloud(report)
        first = report.vms[0]
        ssh_dir = f"{report.state_dir}/ssh"
        out.print(
            f"Log in: ssh -i {ssh_dir}/id_ed25519 -o UserKnownHostsFile={ssh_dir}/known_hosts "
            f"{cloud.ADMIN_USER}@{first.ip}"
        )
        out.print(f"Ansible: ansible all -m ping   (inventory {report.state_dir}/inventory.yml)")
        out.print(f"Ready in {report.seconds:.0f}s.")
    if not report.ready:
        not_ready = [vm.hostname for vm in report.vms if not vm.ssh_ok] or ["the registry"]
        err.print(f"[bold red]error:[/] not ready: {', '.join(not_ready)}", highlight=False)
        raise typer.Exit(1)


def cloud_vms_up(
    cohort: str,
    students: int,
    provider: str,
    config: Path | None,
    ssh_timeout: float,
    as_json: bool,
    dry_run: bool = False,
) -> None:
    """`cloud up --provider P`: the plan and its cost, then the VMs and the inventory."""
    if config is None:
        raise WorkshopError(
            f"--provider {provider} needs --config cohort.yml (README, 'VMs in a cloud')"
        )
    cohort_spec = cloudvms.spec.load(config)
    if cohort_spec.provider != provider:
        raise WorkshopError(f"{config} is for provider {cohort_spec.provider}, not {provider}")
    plan = cloudvms.plan(config, students, cohort)
    cost = (
        f"about ${plan.total_usd:.2f} ({students} x {plan.instance_type} at "
        f"${plan.hourly_usd:.2f}/h together, {plan.hours:g} h)"
        if plan.total_usd is not None
        else f"no price for {plan.instance_type} in the cohort file's `prices`"
    )
    err.print(f"[dim]-> estimate: {cost}[/]", highlight=False)
    if dry_run:
        if as_json:
            typer.echo(json.dumps(plan.to_dict(), indent=2))
        else:
            zones = ", ".join(plan.offered.get(plan.instance_type, []))
            out.print(
                f"{students} x {plan.instance_type or '?'} ({plan.vcpus_per_vm} vCPUs, "
                f"{plan.gpus_per_vm} GPU each) in {zones or 'no zone'} of {plan.region}: "
                f"{plan.needed_vcpus} vCPUs needed, "
                f"{max(0.0, plan.quota_vcpus - plan.used_vcpus):.0f} free in "
                f"'{plan.quota_name}'."
            )
        for problem in plan.problems:
            err.print(f"[bold red]error:[/] {problem}", highlight=False)
        if not plan.fits:
            raise typer.Exit(1)
        out.print("It fits. Nothing was made (--dry-run).")
        return
    report = cloudvms.up(
        cohort,
        students,
        config,
        plan=plan,
        ssh_timeout=ssh_timeout,
        progress=lambda msg: err.print(f"[dim]-> {msg}[/]", highlight=False),
    )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        render_cloud_vms(cohort, report.vms)
        out.print(f"Inventory: {state.cohort_dir(cohort) / cloudvms.INVENTORY}")
    for student, why in sorted(report.failed.items()):
        err.print(f"[bold red]error:[/] {student}: no VM: {why}", highlight=False)
    silent = [vm.student for vm in report.vms if not vm.ssh_ok]
    if silent:
        err.print(f"[bold red]error:[/] no SSH answer: {', '.join(silent)}", highlight=False)
    if not report.ready:
        raise typer.Exit(1)


def render_cloud_vms(cohort: str, vms: list[Any]) -> None:
    table = Table(title=f"Cohort '{cohort}' VMs")
    for column in ("student", "instance", "type", "zone", "state", "IP", "SSH ok"):
        table.add_column(column)
    for vm in vms:
        ok = {True: "[green]yes[/]", False: "[red]no[/]", None: "-"}[vm.ssh_ok]
        table.add_row(
            vm.student, vm.instance_id, vm.instance_type, vm.zone, vm.state, vm.public_ip or "-", ok
        )
    out.print(table)


@cloud_app.command("status")
@friendly_errors
def cloud_status(cohort: CohortOption = cloud.DEFAULT_COHORT, as_json: JsonOption = False) -> None:
    """Show each VM's IP, whether SSH answers, and systemd's state."""
    if cloudvms.made_by_kit(cohort):
        vms = cloudvms.status(cohort)
        if as_json:
            typer.echo(json.dumps([asdict(vm) for vm in vms], indent=2))
        else:
            render_cloud_vms(cohort, vms)
        return
    report = cloud.status(cohort)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        render_cloud(report)
    if not report.ready:
        raise typer.Exit(1)


@cloud_app.command("down")
@friendly_errors
def cloud_down(cohort: CohortOption = cloud.DEFAULT_COHORT) -> None:
    """Remove the cohort's VMs, registry, volumes, network, keys and state. Idempotent."""
    if cloudvms.made_by_kit(cohort):
        removed = cloudvms.down(cohort)
        out.print(
            f"Cohort '{cohort}': {len(removed.terminated)} instances terminated, "
            f"{len(removed.security_groups)} security groups, {len(removed.key_pairs)} "
            f"key pairs and {len(removed.volumes)} leftover disks deleted"
            + (f"; also {', '.join(removed.other)}." if removed.other else ".")
        )
        if removed.left:
            err.print(f"[bold red]error:[/] not removed: {'; '.join(removed.left)}")
            raise typer.Exit(1)
        return
    report = cloud.down(cohort)
    if not (report.containers or report.volumes or report.networks or report.files or report.tags):
        out.print(f"Cohort '{cohort}': nothing to remove.")
        return
    out.print(
        f"Cohort '{cohort}' removed: {len(report.containers)} containers, "
        f"{len(report.volumes)} volumes, {len(report.networks)} networks, "
        f"{len(report.files)} state paths, {len(report.tags)} image tags of its registry."
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


@registries_app.command("create")
@friendly_errors
def registries_create(
    cohort: CohortOption = cloud.DEFAULT_COHORT,
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
                f"Credentials: {cloud.paths(cohort).root}/students/<login>/"
                f"{cohort_access.CARD_FILE} (0600)"
            )
        if any(result.ci for result in results):
            out.print(
                f"The workflow's repository variables: {cloud.paths(cohort).root}/students/"
                f"<login>/{cohort_access.CI_FILE} (gh variable set lines; run it, or hand it "
                "to the student)"
            )
    _report_failures([(r.student, r.registry, r.error) for r in results if r.error])


@registries_app.command("delete")
@friendly_errors
def registries_delete(
    cohort: CohortOption = cloud.DEFAULT_COHORT,
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
    from workshop.labs import catalog

    labs = catalog.all_labs()
    if as_json:
        typer.echo(json.dumps([lab.model_dump(mode="json") for lab in labs], indent=2))
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


InventoryOption = Annotated[
    Path | None,
    typer.Option(
        "--inventory",
        help="A real cohort's inventory (default: the lab cloud's state/<cohort>/inventory.yml).",
    ),
]


def _cohort(name: str, inventory: Path | None) -> Any:
    from workshop import cohort

    return cohort.load(name, inventory)


@app.command("prepare")
@friendly_errors
def prepare_command(
    cohort: CohortOption = cloud.DEFAULT_COHORT,
    inventory: InventoryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Before class: the model, the base and lab images in the classroom registry (by
    digest), every lab's student copy; then site.yml preloads and delivers them."""
    from workshop.classroom import prepare
    from workshop.engine import docker_client

    report = prepare.prepare(_cohort(cohort, inventory), docker_client())
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
        f"Next: ansible-playbook -i {_inventory_arg(cohort, inventory)} site.yml "
        f"(preloads the images, delivers the labs). Done in {report.seconds:.0f}s."
    )


def _inventory_arg(cohort: str, inventory: Path | None) -> str:
    from workshop import cohort as cohorts

    return str(cohorts.inventory_path(cohort, inventory))


LabsOption = Annotated[
    list[str] | None,
    typer.Option("--lab", help="A lab (directory or short name); repeatable."),
]
StudentOption = Annotated[str | None, typer.Option("--student", help="Only this student.")]


@app.command("deploy")
@friendly_errors
def deploy_command(
    lab: LabsOption = None,
    all_labs: Annotated[bool, typer.Option("--all", help="Every lab.")] = False,
    cohort: CohortOption = cloud.DEFAULT_COHORT,
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
        _cohort(cohort, inventory), None if all_labs else lab, student=student, solution=solution
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
        problem = (
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


@app.command("check")
@friendly_errors
def check_command(
    lab: Annotated[str, typer.Option("--lab", help="The lab (directory or short name).")],
    cohort: CohortOption = cloud.DEFAULT_COHORT,
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

    group = _cohort(cohort, inventory)
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


@app.command("report")
@friendly_errors
def report_command(
    cohort: CohortOption = cloud.DEFAULT_COHORT,
    inventory: InventoryOption = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write the report as one self-contained page.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The cohort at a glance: provisioning readiness and every lab's checks per student."""
    from workshop.classroom import report

    found = report.build(_cohort(cohort, inventory))
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
            score, problem = f"[red]{card.status}[/]", card.message
        else:
            colour = "green" if card.score == card.total else "red"
            score = f"[{colour}]{card.score}/{card.total}[/]"
            problem = next(
                (f"{r.name}: {r.message}" for r in card.requirements if not r.passed), ""
            )
        who = f"{card.student} ({card.source})" if card.student else card.source
        table.add_row(who, *cells, score, card.size_limit or "-", str(len(card.warnings)), problem)
    table.caption = "  ".join(f"{n}={name}" for n, name in enumerate(names, start=1))
    return table


@app.command("grade")
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
            shown = card.student or card.source
            err.print(
                f"[dim]-> {shown}: {card.score}/{card.total} ({card.seconds:.0f}s)[/]"
                if card.status == grader.GRADED
                else f"[dim]-> {shown}: {card.status}: {card.message}[/]",
                highlight=False,
            )

    if cohort:
        group = _cohort(cohort, inventory)
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
                    f"[bold]{card.student or card.source}[/]: {card.message}", highlight=False
                )
                for number, result in enumerate(card.requirements, start=1):
                    mark = marks.get(result.status, "?")
                    out.print(
                        f"  {mark} {number}. {result.name}: {result.message}", highlight=False
                    )
            if card.warnings:
                out.print(f"[bold]{card.student or card.source}[/]: warnings", highlight=False)
                for warning in card.warnings:
                    out.print(f"  [yellow]{warning.code}[/]: {warning.message}", highlight=False)
    if html:
        from workshop import state

        state.write_file(html, report.render_grades_html(cards))
        err.print(f"Scorecards: {html.resolve()}", highlight=False)
    failed = [card.student or card.source for card in cards if card.status != grader.GRADED]
    if failed:
        err.print(f"[bold red]not graded:[/] {', '.join(failed)}", highlight=False)
        raise typer.Exit(1)


@quiz_app.command("handout")
@friendly_errors
def quiz_handout(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for QUIZ.md and answers.yml.")],
) -> None:
    """Write the quiz for students: QUIZ.md (the questions, no key) and answers.yml (a
    blank per question, the file they hand in)."""
    from workshop.labs import quiz

    written = quiz.write_handout(out_dir)
    out.print(f"Quiz handout: {', '.join(str(path) for path in written)}", highlight=False)


@quiz_app.command("grade")
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
                else f"[yellow]not graded[/]: {result.message}"
            )
            score = f"{result.score}/{result.total}" if result.status == quiz.GRADED else "-"
            table.add_row(result.student or "-", result.file, score, verdict)
        out.print(table)
        for result in results:
            shown = [a for a in result.answers if details or a.review]
            if shown or result.warnings:
                out.print(f"[bold]{result.student}[/] ({result.file})", highlight=False)
            for answer in shown:
                mark = "[green]✓[/]" if answer.correct else "[red]✗[/]"
                line = f"  {mark} {answer.id}. {answer.given or '(no answer)'}"
                if answer.kind == "choice" and not answer.correct:
                    line += f" (key: {answer.expected}{'; ' + answer.note if answer.note else ''})"
                if answer.kind == "short" and answer.given:
                    named = ", ".join(answer.matched) or "nothing"
                    wanted = "; ".join(" / ".join(group) for group in answer.missing)
                    line += f"\n      named: {named}" + (f"; not named: {wanted}" if wanted else "")
                    if answer.review:
                        line += "\n      [yellow]review[/]: model answer: " + answer.expected
                out.print(line, highlight=False)
            for warning in result.warnings:
                out.print(f"  [yellow]warning[/]: {warning}", highlight=False)
    failed = [result.file for result in results if result.status != quiz.GRADED]
    if failed:
        err.print(f"[bold red]not graded:[/] {', '.join(failed)}", highlight=False)
        raise typer.Exit(1)


@app.command("cards")
@friendly_errors
def cards_command(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for the cards (0700).")],
    cohort: CohortOption = cloud.DEFAULT_COHORT,
    inventory: InventoryOption = None,
    student: StudentOption = None,
) -> None:
    """A printable login card per student (HTML and PDF, and cards.pdf with all): VM,
    login, password, classroom and cloud registry logins, a QR code. Files are 0600."""
    from workshop.classroom import cards

    made = cards.write(_cohort(cohort, inventory), out_dir, student=student)
    out.print(
        f"{len(made.students)} cards in {made.directory} (0600; they hold passwords): "
        f"{', '.join(Path(name).name for name in made.files if name.endswith('.pdf'))}"
    )


if __name__ == "__main__":
    app()
