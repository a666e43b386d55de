#!/bin/sh
# Like every stock Ubuntu (and Debian cloud) image: unattended-upgrades installed, its
# shutdown helper running all the time ("unattended-upgrade-shutdown --wait-for-signal",
# whose process name is cut to "unattended-upgr"), and apt's daily timers enabled.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends unattended-upgrades >/dev/null
systemctl enable --now unattended-upgrades.service apt-daily.timer apt-daily-upgrade.timer
for _ in $(seq 30); do pgrep -x unattended-upgr >/dev/null && exit 0; sleep 1; done
echo "unattended-upgrade-shutdown is not running" >&2; exit 1
