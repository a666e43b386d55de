"""The base stand-ins: built offline, published to a cohort's classroom registry."""

from __future__ import annotations

import pytest

from workshop.errors import WorkshopError
from workshop.labcloud.registry import classroom_registry
from workshop.labs import bases


@pytest.mark.labcloud
def test_build_bases_publishes_under_library(engine, lab_cloud):
    cohort = lab_cloud["cohort"]
    (result,) = bases.build_bases(engine, ["redis"], cohort=cohort)
    address = lab_cloud["registry"]["address"]
    assert result.pushed == f"{address}/library/redis:7"
    registry = classroom_registry(cohort)
    assert registry.manifest_digest("library/redis", "7").startswith("sha256:")
    # Read from the image, not a container: redis declares VOLUME /data, and a throw-away
    # container would leave an anonymous volume behind.
    user = engine.images.get(result.local).attrs["Config"]["User"]
    assert user == "redis"
    registry.delete_repository("library/redis", force=True)


def test_unknown_names_and_cohorts_are_one_line(engine, state_root):
    with pytest.raises(WorkshopError, match="unknown base image mongo: choose from python"):
        bases.build_bases(engine, ["mongo"])
    with pytest.raises(WorkshopError, match="workshop cloud up --cohort nowhere"):
        bases.build_bases(engine, ["redis"], cohort="nowhere")
