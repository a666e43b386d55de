"""``workshop prepare``: everything a cohort needs before class, in one step.

The classifier's model is exported, the offline base images and the lab images are built
and pushed to the classroom registry (verified by digest), every lab's student and
solution archives are written, and the VMs are told what to preload: a lab cloud's
inventory is rewritten with the images by digest; for real VMs the list is written to
``<state>/lab-images.txt`` for the inventory's ``workshop_lab_images``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import docker

from registries import push
from registries.base import RegistryError
from registries.local import LocalRegistry
from workshop import state
from workshop.checking import kinds
from workshop.classroom import deploy
from workshop.cohort import Cohort
from workshop.errors import WorkshopError
from workshop.labcloud import cloud
from workshop.labcloud.registry import classroom_registry as lab_cloud_registry
from workshop.labs import bases, catalog, classifier_model

LAB_IMAGES_FILE = "lab-images.txt"


@dataclass
class Published:
    reference: str  # host/repository:tag@sha256:...
    bytes_uploaded: int
    seconds: float


@dataclass
class PrepareReport:
    cohort: str
    model: str
    published: list[Published] = field(default_factory=list)
    labs: list[str] = field(default_factory=list)
    lab_images: list[str] = field(default_factory=list)
    written_to: str = ""
    seconds: float = 0.0


def classroom_registry(cohort: Cohort) -> LocalRegistry:
    """The cohort's classroom registry, logged in as the instructor."""
    if cohort.lab_cloud:
        return lab_cloud_registry(cohort.name)
    credentials = cohort.state_dir / "registry" / "credentials.json"
    if not cohort.registry:
        raise WorkshopError(f"{cohort.inventory}: set classroom_registry_address (host:port)")
    try:
        login = json.loads(credentials.read_text())
    except (FileNotFoundError, ValueError):
        raise WorkshopError(
            f"no instructor login for {cohort.registry} in {credentials}: write "
            '{"username": ..., "password": ...} there (chmod 600)'
        ) from None
    ca = str(cohort.registry_ca) if cohort.registry_ca else None
    return LocalRegistry(cohort.registry, login["username"], login["password"], ca)


def prepare(cohort: Cohort, client: docker.DockerClient) -> PrepareReport:
    """Model, images in the registry, lab archives, and the preload list."""
    started = time.monotonic()
    for lab in catalog.all_labs():  # a lab.yml the checks cannot read stops it before class
        kinds.parse(lab)
    exported = classifier_model.prepare()
    report = PrepareReport(cohort.name, f"{exported.path} ({exported.size_mb:.0f} MB)")
    registry = classroom_registry(cohort)
    built = bases.build_bases(client, extra_ca=bases.trusted_bundle())
    sources = bases.push_sources(built) + catalog.lab_images(client)
    try:
        results = push.push_all(client, {"local": registry}, sources)
    except RegistryError as exc:
        raise WorkshopError(str(exc)) from None
    failed = [f"{r.repository}:{r.tag}: {r.error}" for r in results if r.error]
    if failed:
        raise WorkshopError(f"publishing to {registry.address} failed: {'; '.join(failed)}")
    for result in results:
        reference = f"{result.uri}:{result.tag}@{result.digest}"
        report.published.append(Published(reference, result.bytes_uploaded, result.seconds))
    report.labs = sorted(deploy.build(cohort).labs)
    references = [item.reference for item in report.published]
    if cohort.lab_cloud:
        report.lab_images = cloud.record_lab_images(cohort.name, references)
        report.written_to = str(cohort.inventory)
    else:
        report.lab_images = references
        target = cohort.state_dir / LAB_IMAGES_FILE
        state.write_file(target, "".join(f"- {ref}\n" for ref in references))
        report.written_to = str(target)
    report.seconds = round(time.monotonic() - started, 1)
    return report
