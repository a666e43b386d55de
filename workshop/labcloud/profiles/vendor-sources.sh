#!/bin/sh
# Like an image set up by Docker's and NVIDIA's install guides: their apt sources, each
# signed by the keyring path the guide uses. (The keyrings here are empty files: apt reads
# the Signed-By values when it parses the sources, before any download.)
set -eu
. /etc/os-release
install -d -m 0755 /etc/apt/keyrings
: > /etc/apt/keyrings/docker.gpg
: > /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
chmod 0644 /etc/apt/keyrings/docker.gpg /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
echo "deb [arch=$(dpkg --print-architecture) signed-by=/etc/apt/keyrings/docker.gpg] https://download.docker.com/linux/debian $VERSION_CODENAME stable" \
  > /etc/apt/sources.list.d/docker.list
echo "deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] https://nvidia.github.io/libnvidia-container/stable/deb/\$(ARCH) /" \
  > /etc/apt/sources.list.d/nvidia-container-toolkit.list
