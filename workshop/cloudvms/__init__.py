"""VMs in a real cloud for a cohort: ``workshop cloud up|status|down --provider P``.

``up`` reads the cohort file (``spec``), asks the provider whether the cohort fits (image,
zones, quota) and what it costs, creates what is missing, waits for SSH, and writes the
cohort's inventory in the shape the lab cloud writes (README, "Real VMs"), so
``ansible-playbook site.yml`` and every ``workshop`` command run unchanged.
``state/<cohort>/cloud.json`` remembers the provider and the cohort file for ``status``
and ``down``. Providers: AWS EC2 (``aws``), Google Compute Engine (``gcp``) and Azure
(``azure``), each in its own module with the cloud's own SDK.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from workshop import cohort as cohorts
from workshop import state
from workshop.cloudvms import spec
from workshop.cloudvms.base import CloudProvider
from workshop.cloudvms.model import DownReport, Plan, Progress, UpReport, Vm
from workshop.errors import WorkshopError
from workshop.labcloud.spec import roster
from workshop.ssh import banner_answers

CLOUD_FILE = "cloud.json"
INVENTORY = "inventory.yml"


# provider name -> (module, class), imported on demand: the GCP and Azure SDKs take
# seconds to import, so only the cohort's own is loaded.
PROVIDERS = {
    "aws": ("workshop.cloudvms.aws", "AwsCloud"),
    "gcp": ("workshop.cloudvms.gcp", "GcpCloud"),
    "azure": ("workshop.cloudvms.azure", "AzureCloud"),
}


def provider(cohort_spec: spec.CloudCohortSpec) -> CloudProvider:
    if cohort_spec.provider not in PROVIDERS:
        raise WorkshopError(f"provider {cohort_spec.provider!r}: {', '.join(PROVIDERS)}")
    module, name = PROVIDERS[cohort_spec.provider]
    made: CloudProvider = getattr(importlib.import_module(module), name)(cohort_spec)
    return made


def _remembered(cohort: str) -> spec.CloudCohortSpec:
    record = state.cohort_dir(cohort) / CLOUD_FILE
    try:
        saved = json.loads(record.read_text())
    except FileNotFoundError:
        raise WorkshopError(
            f"cohort {cohort!r} has no cloud VMs made by the kit ({record} is missing): "
            "`workshop cloud up --provider ... --config ...` makes them"
        ) from None
    return spec.load(Path(saved["config"]))


def plan(config: Path, students: int, cohort: str = "") -> Plan:
    return provider(spec.load(config)).plan(students, cohort)


def up(
    cohort: str,
    students: int,
    config: Path,
    *,
    ssh_timeout: float = 300.0,
    progress: Progress = lambda _msg: None,
    plan: Plan | None = None,
) -> UpReport:
    """``plan``: what ``plan()`` just said for this cohort (the CLI prints it first)."""
    cohort_spec = spec.load(config)
    cloud = provider(cohort_spec)
    people = roster(students)
    directory = state.cohort_dir(cohort)
    # Refused before anything is made or written.
    checked = plan or cloud.plan(students, cohort)
    if not checked.fits:
        raise WorkshopError("; ".join(checked.problems))
    # Written before the first resource: a run that fails half-way can still be taken down.
    record = {
        "provider": cohort_spec.provider,
        "region": cohort_spec.region,
        "config": str(config.resolve()),
    }
    state.write_file(directory / CLOUD_FILE, json.dumps(record, indent=2))
    report = cloud.up(
        cohort,
        [person.login for person in people],
        ssh_probe=banner_answers,
        ssh_timeout=ssh_timeout,
        progress=progress,
        plan=checked,
    )
    by_login = {person.login: person for person in people}
    inventory = render_inventory(cohort, cohort_spec, report.vms, by_login)
    state.write_file(directory / INVENTORY, inventory)
    state.point_current_at(cohort)
    return report


def made_by_kit(cohort: str) -> bool:
    """Whether ``cohort``'s VMs are in a cloud (``up --provider``), not the lab cloud."""
    return (state.cohort_dir(cohort) / CLOUD_FILE).is_file()


def status(cohort: str) -> list[Vm]:
    return provider(_remembered(cohort)).vms(cohort)


def down(cohort: str) -> DownReport:
    return provider(_remembered(cohort)).down(cohort)


def render_inventory(
    cohort: str, cohort_spec: spec.CloudCohortSpec, vms: list[Vm], people: dict[str, Any]
) -> str:
    """The cohort's inventory (one student per VM), written by the one writer
    (``cohort.py``)."""
    directory = state.cohort_dir(cohort)
    key = cohort_spec.ssh_public_key.expanduser()
    layout = cohorts.Layout(
        name=cohort,
        state_dir=directory,
        admin_user=cohort_spec.admin_user,
        key_file=key.with_suffix("") if key.suffix == ".pub" else key,
        # A new VM's host key is learned on first contact and held to after that.
        ssh_args=(
            f"-o IdentitiesOnly=yes -o UserKnownHostsFile={directory / 'known_hosts'} "
            "-o StrictHostKeyChecking=accept-new"
        ),
        lab_cloud=False,
        registry=cohort_spec.classroom_registry_address or "",
        registry_ca=cohort_spec.classroom_registry_ca_file,
        docker_install_source="official",
        extra_ca_certificates=(),
        lab_images=(),
        hosts=tuple(
            (
                people[vm.student].host,
                vm.public_ip,
                (cohorts.Student(people[vm.student].login, people[vm.student].name, ""),),
            )
            for vm in vms
            if vm.student in people and vm.public_ip
        ),
        written_by=f"workshop cloud up --provider {cohort_spec.provider}",
    )
    return cohorts.render_inventory(layout)
