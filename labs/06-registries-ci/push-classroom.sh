#!/usr/bin/env bash
# Activity 5, the same flow against the classroom registry, run on your VM:
#   REGISTRY=10.213.0.2:5000 USERNAME=student01 ./push-classroom.sh IMAGE REPOSITORY
# Reads the password from PASSWORD_FILE (default ~/.registry-password), else uses the
# login Docker already keeps for REGISTRY, else reads stdin; never the command line; tags IMAGE as REGISTRY/REPOSITORY:<git commit or timestamp>,
# pushes, and checks the registry holds the digest the push reported.
set -euo pipefail

IMAGE=${1:?usage: push-classroom.sh IMAGE REPOSITORY (e.g. image-classifier student01/classifier)}
REPOSITORY=${2:?usage: push-classroom.sh IMAGE REPOSITORY}
REGISTRY=${REGISTRY:?set REGISTRY to the classroom registry (host:port)}
USERNAME=${USERNAME:-$(id -un)}
PASSWORD_FILE=${PASSWORD_FILE:-$HOME/.registry-password}
TAG=${TAG:-$(git rev-parse --short HEAD 2>/dev/null || date +%Y%m%d%H%M%S)}
TARGET="$REGISTRY/$REPOSITORY:$TAG"

if [ -r "$PASSWORD_FILE" ]; then
    docker login "$REGISTRY" --username "$USERNAME" --password-stdin < "$PASSWORD_FILE"
elif docker login "$REGISTRY" </dev/null >/dev/null 2>&1; then
    echo "logged in to $REGISTRY with the credentials Docker keeps (your VM logged you in)"
else
    docker login "$REGISTRY" --username "$USERNAME" --password-stdin
fi
docker tag "$IMAGE" "$TARGET"
# The push's progress goes to stderr through fd 2 (a path like /dev/stderr cannot be
# opened when the script runs as the student under sudo, as `workshop check` runs it).
pushed=$(docker push "$TARGET" | tee >(cat >&2) | sed -n 's/.*digest: \(sha256:[0-9a-f]*\).*/\1/p')
[ -n "$pushed" ] || { echo "error: the push reported no digest" >&2; exit 1; }
held=$(docker buildx imagetools inspect "$TARGET" --format '{{json .Manifest}}' 2>/dev/null \
       | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])' 2>/dev/null \
       || docker manifest inspect --verbose "$TARGET" \
       | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d[0] if isinstance(d,list) else d; print(d["Descriptor"]["digest"])')
if [ "$held" != "$pushed" ]; then
    echo "error: $TARGET holds $held, the push reported $pushed" >&2
    exit 1
fi
docker rmi "$TARGET" >/dev/null
echo "pushed $TARGET@$pushed"
