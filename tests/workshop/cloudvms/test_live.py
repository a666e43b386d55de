"""`cloud up --provider aws` against real EC2, when asked for: it costs money.

Set WORKSHOP_LIVE_AWS=1, the usual AWS credentials, and WORKSHOP_LIVE_AWS_COHORT (a
cohort file, see inventory/cloud-cohort.example.yml, whose quota holds one VM). The test
plans one VM, makes it, waits for its SSH banner, then removes everything the cohort tag
names and checks nothing is left. Otherwise it is skipped, saying what is missing.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from workshop import ssh
from workshop.cloudvms import aws, spec
from workshop.cloudvms.base import CloudProvider
from workshop.cloudvms.model import DownReport


def live_cohort_file(provider: str) -> Path:
    """The cohort file of WORKSHOP_LIVE_<PROVIDER>_COHORT, or skip saying what is missing."""
    name = provider.upper()
    if os.environ.get(f"WORKSHOP_LIVE_{name}") != "1":
        pytest.skip(
            f"live {provider} VM test: set WORKSHOP_LIVE_{name}=1 with credentials to run it"
        )
    config = os.environ.get(f"WORKSHOP_LIVE_{name}_COHORT")
    if not config:
        pytest.skip(f"live {provider} VM test: set WORKSHOP_LIVE_{name}_COHORT to a cohort file")
    return Path(config)


def new_cohort() -> str:
    return f"kit-live-{secrets.token_hex(3)}"


def up_and_down(cloud: CloudProvider, cohort: str) -> DownReport:
    """One VM planned, made and answering SSH, then the cohort removed, leaving nothing."""
    plan = cloud.plan(1, cohort)
    assert plan.fits, plan.problems
    try:
        report = cloud.up(cohort, ["student01"], ssh_probe=ssh.banner_answers, ssh_timeout=600)
        assert report.ready, (report.failed, report.vms)
        assert cloud.vms(cohort)[0].public_ip
    finally:
        removed = cloud.down(cohort)
    assert removed.left == []
    assert cloud.vms(cohort) == []
    return removed


def test_one_vm_up_answers_ssh_and_down_leaves_nothing():
    cloud = aws.AwsCloud(spec.load(live_cohort_file("aws")))
    up_and_down(cloud, new_cohort())
