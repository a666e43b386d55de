#!/bin/sh
# Like a cloud VM in its first minute: cloud-init (the real package, with a NoCloud seed
# as clouds provide their user data) is still running its first boot, installing a
# package and running the user's commands, when site.yml arrives. `cloud-init status`
# says "running" until the seed's commands end (FIRST_BOOT_SECONDS, default 45).
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends cloud-init >/dev/null
seed=/var/lib/cloud/seed/nocloud
mkdir -p "$seed" /etc/cloud/cloud.cfg.d
printf 'instance-id: %s-first-boot\nlocal-hostname: %s\n' "$(hostname)" "$(hostname)" >"$seed/meta-data"
cat >"$seed/user-data" <<SEED
#cloud-config
packages: [jq]
runcmd:
  - [sleep, "${FIRST_BOOT_SECONDS:-45}"]
SEED
# The lab VM is a container: ds-identify finds no cloud unless told which one this is.
printf 'datasource_list: [ NoCloud ]\nwarnings:\n  dsid_missing_source: "off"\n' \
  >/etc/cloud/cloud.cfg.d/90-lab-cloud.cfg
cloud-init clean --logs >/dev/null
rm -rf /run/cloud-init
systemctl daemon-reload  # the generator enables cloud-init for the seed
systemd-run --quiet --unit=cloud-init-first-boot sh -c \
  'cloud-init init --local && cloud-init init && cloud-init modules --mode config && cloud-init modules --mode final'
for _ in $(seq 30); do
  cloud-init status 2>/dev/null | grep -qx 'status: running' && exit 0
  sleep 1
done
echo "cloud-init is not running: $(cloud-init status 2>&1)" >&2
exit 1
