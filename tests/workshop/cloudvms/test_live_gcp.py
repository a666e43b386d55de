"""`cloud up --provider gcp` against real Compute Engine, when asked for: it costs money.

Set WORKSHOP_LIVE_GCP=1, Google credentials of the standard chain (`gcloud auth
application-default login`, or GOOGLE_APPLICATION_CREDENTIALS), and WORKSHOP_LIVE_GCP_COHORT
(a cohort file with `provider: gcp`, see inventory/cloud-cohort.example.yml, whose quotas
hold one VM). The test plans one VM, makes it, waits for its SSH banner, then removes
everything the cohort label (and the cohort's firewall rule name) names and checks nothing
is left. Otherwise it is skipped, saying what is missing.
"""

from __future__ import annotations

import pytest

from tests.workshop.cloudvms.test_live import live_cohort_file, new_cohort, up_and_down
from workshop.cloudvms import spec


def test_one_vm_up_answers_ssh_and_down_leaves_nothing():
    config = live_cohort_file("gcp")
    from workshop.cloudvms import gcp  # the SDK takes seconds to import: only when run

    cloud = gcp.GcpCloud(spec.load(config))
    cohort = new_cohort()
    up_and_down(cloud, cohort)
    # Nothing carrying the cohort's label is left (instances, disks), nor its firewall rule.
    import google.api_core.exceptions as gexc

    assert [i.name for i in cloud._listed(cohort)] == []
    disks = cloud._aggregated(cloud.disks, "disks", cohort, "disks")
    assert [d.name for d in disks if d.labels.get("workshop-cohort") == cohort] == []
    with pytest.raises(gexc.NotFound):
        cloud.firewalls.get(project=cloud.project, firewall=gcp.firewall_name(cohort))
    again = cloud.down(cohort)
    assert (again.terminated, again.other, again.volumes, again.left) == ([], [], [], [])
