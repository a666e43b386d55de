"""The lab cloud: a simulated cohort of student VMs on one machine.

Student VMs are systemd containers on a dedicated Docker network, reachable over real
SSH; the classroom registry runs beside them. Instructors use it for a full dry run of
their workshop before they pay for cloud GPU VMs; the kit's tests run against it.
"""
