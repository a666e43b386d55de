"""``workshop cloud up|status|down``: the cohort's VMs, in the lab cloud or a real cloud."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from workshop import cloudvms, state
from workshop.cli.common import (
    CohortOption,
    JsonOption,
    err,
    friendly_errors,
    out,
)
from workshop.errors import WorkshopError
from workshop.labcloud import cloud, images, spec

app = typer.Typer(help="The lab cloud: a simulated cohort of student VMs on this machine.")


def render_cloud(report: spec.CloudReport) -> None:
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


@app.command("up")
@friendly_errors
def cloud_up(
    students: Annotated[int, typer.Option("--students", help="Number of student VMs.")] = 2,
    distro: Annotated[
        str, typer.Option("--distro", help=f"One of: {', '.join(images.DISTROS)}.")
    ] = images.DEFAULT_DISTRO,
    cohort: CohortOption = spec.DEFAULT_COHORT,
    profile: Annotated[
        list[str] | None,
        typer.Option(
            "--profile",
            help="Make the VMs look like a real cloud image (repeatable): "
            + ", ".join(spec.PROFILES),
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
    request = spec.validate_spec(cohort, students, distro, profile)
    report = cloud.up(request, progress=lambda msg: err.print(f"[dim]-> {msg}[/]", highlight=False))
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
            f"{spec.ADMIN_USER}@{first.ip}"
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


@app.command("status")
@friendly_errors
def cloud_status(cohort: CohortOption = spec.DEFAULT_COHORT, as_json: JsonOption = False) -> None:
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


@app.command("down")
@friendly_errors
def cloud_down(cohort: CohortOption = spec.DEFAULT_COHORT) -> None:
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
