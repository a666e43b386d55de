#!/bin/sh
# Like a minimal cloud image: no apt package lists, no python3-apt.
set -eu
export DEBIAN_FRONTEND=noninteractive
if dpkg-query -W -f='${Status}' python3-apt 2>/dev/null | grep -q "install ok"; then
  apt-get purge -y -qq python3-apt >/dev/null
fi
rm -rf /var/lib/apt/lists/*
