"""What the student pushed to the classroom registry.

Each kind is a settings model (its lab.yml fields, a comment each) and a function
``check_<kind>(session, settings)``; ``kinds/__init__.py`` is the table."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from workshop.checking.results import Outcome, error, failed, passed
from workshop.checking.settings import CheckSettings

if TYPE_CHECKING:
    from workshop.checking.session import Session


class RegistryTags(CheckSettings):
    """``repository`` in the classroom registry has every tag of ``tags``, one digest."""

    kind: Literal["registry_tags"]
    repository: str | None = None  # e.g. "{login}/classifier"
    tags: list[str] = Field(default_factory=list)  # the tags it must have


def _remote_digest(session: Session, reference: str) -> str | None:
    """The digest a registry holds for ``reference``, read as the student (their login)."""
    if session.target.builder == "buildkit":
        found = session.docker(
            "buildx",
            "imagetools",
            "inspect",
            reference,
            "--format",
            "{{json .Manifest}}",
            timeout=60,
        )
        if found.ok:
            return str(json.loads(found.stdout).get("digest") or "") or None
        return None
    found = session.docker("manifest", "inspect", "--verbose", reference, timeout=60)
    if not found.ok:
        return None
    described = json.loads(found.stdout)
    described = described[0] if isinstance(described, list) else described
    return str(described.get("Descriptor", {}).get("digest") or "") or None


def check_registry_tags(session: Session, check: RegistryTags) -> Outcome:
    """The student's repository in the classroom registry has every one of ``tags`` and
    they are one image (one digest): a version, its lines and ``latest`` from one build."""
    if not session.env.registry:
        return error("no classroom registry for this cohort")
    repository = session.template(check.repository or "{login}/classifier")
    digests = {
        tag: _remote_digest(session, f"{session.env.registry}/{repository}:{tag}")
        for tag in check.tags
    }
    evidence = {"repository": repository, "digests": digests}
    missing = [tag for tag, digest in digests.items() if digest is None]
    if missing:
        return failed(
            f"{session.env.registry}/{repository} has no tag {', '.join(missing)}: tag the "
            "image with each and push them (docker push --all-tags)",
            **evidence,
        )
    if len(set(digests.values())) > 1:
        first = check.tags[0]
        other = next(tag for tag in check.tags if digests[tag] != digests[first])
        return failed(
            f"{other} is another image than {first} ({str(digests[other])[:19]} vs "
            f"{str(digests[first])[:19]}): tag one build with every name, then push",
            **evidence,
        )
    return passed(
        f"{', '.join(check.tags)}: one image, {str(digests[check.tags[0]])[:19]}", **evidence
    )
