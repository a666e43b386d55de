#!/usr/bin/env bash
# The buildx CLI plugin for this machine's own builds (the lab tests of BuildKit-only
# techniques: RUN --mount=type=secret and type=cache). The host's engine has BuildKit but
# Debian 12 packages no buildx; Debian 13's docker-buildx is a static Go binary needing
# only libc, so it is fetched from the Debian archive (checked against its SHA-256) and
# kept in a kit-private Docker CLI directory: nothing else on the host changes, and plain
# `docker build` here stays the classic builder.
set -euo pipefail
VERSION="0.13.1+ds1-3"
SHA256="fcf8c48204d1603c8f209451d7827eb91bf30759578baf7704e9e1a87e5f1d7f"
URL="http://deb.debian.org/debian/pool/main/d/docker-buildx/docker-buildx_${VERSION}_amd64.deb"
DEST="${1:-.cache/docker-cli/cli-plugins/docker-buildx}"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
curl -fsSL --retry 3 -o "$scratch/buildx.deb" "$URL"
echo "$SHA256  $scratch/buildx.deb" | sha256sum --check --quiet
dpkg-deb -x "$scratch/buildx.deb" "$scratch/root"
mkdir -p "$(dirname "$DEST")"
install -m 0755 "$scratch/root/usr/libexec/docker/cli-plugins/docker-buildx" "$DEST"
echo "buildx $VERSION: $DEST"
