#!/bin/sh
# A VM whose package archive cannot be reached (no route, a proxy that is not set up):
# the minimal image's state, with apt pointed at an address that never resolves.
set -eu
sh "$(dirname "$0")/minimal.sh"
for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -f "$file" ] && sed -i 's#http://deb.debian.org#http://archive.classroom.invalid#g' "$file"
done
