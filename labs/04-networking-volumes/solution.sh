#!/usr/bin/env bash
# Lesson 04 reference solution: two containers talking by name on a user-defined network,
# a named volume holding the model so more containers start without copying it, the host
# and none networks, and a dataset bind-mounted from the VM.
#   IMAGE=$REGISTRY/classroom/image-classifier:1 PYTHON_IMAGE=$REGISTRY/library/python:3.11-slim ./solution.sh
# Leaves nothing behind unless KEEP=1.
set -euo pipefail

IMAGE=${IMAGE:-classroom/image-classifier:1}
PYTHON_IMAGE=${PYTHON_IMAGE:-python:3.11-slim}
PREFIX=${PREFIX:-lesson04}
NET="$PREFIX-net" VOLUME="$PREFIX-models"
DATA=$(mktemp -d)  # a dataset folder on the VM (step 8)

cleanup() {
    rm -rf "$DATA"
    [ "${KEEP:-0}" = 1 ] && return
    docker rm -f "$PREFIX-classifier" "$PREFIX-classifier-2" "$PREFIX-web" >/dev/null 2>&1 || true
    docker network rm "$NET" >/dev/null 2>&1 || true
    docker volume rm "$VOLUME" >/dev/null 2>&1 || true
}
trap cleanup EXIT

wait_healthy() {  # the image's HEALTHCHECK, as Docker reports it
    for _ in $(seq 60); do
        [ "$(docker inspect -f '{{.State.Health.Status}}' "$1")" = healthy ] && return 0
        sleep 1
    done
    echo "error: $1 never became healthy" >&2; docker logs "$1" >&2; return 1
}

# 1. A user-defined network: Docker's DNS resolves container names on it.
docker network create "$NET" >/dev/null
echo "network: $NET"

# 2. A named volume, filled once with the model (copied out of the image as root).
docker volume create "$VOLUME" >/dev/null
docker run --rm --user 0 -v "$VOLUME:/models" --entrypoint sh "$IMAGE" \
    -c 'cp /app/model/efficientnet_lite0.onnx /app/model/labels.json /models/'
echo "volume: $VOLUME holds $(docker run --rm -v "$VOLUME:/models:ro" --entrypoint sh "$IMAGE" -c 'du -sh /models | cut -f1')"

# 3. The model server reads the model from the volume (read-only), not from its image.
docker run -d --name "$PREFIX-classifier" --network "$NET" \
    -v "$VOLUME:/models:ro" \
    -e MODEL_PATH=/models/efficientnet_lite0.onnx -e LABELS_PATH=/models/labels.json \
    "$IMAGE" >/dev/null
wait_healthy "$PREFIX-classifier"

# 4. Another container on the same network reaches it by name.
docker run --rm --network "$NET" "$PYTHON_IMAGE" python -c "
import urllib.request
print('by name:', urllib.request.urlopen('http://$PREFIX-classifier:8000/health', timeout=5).read().decode())"

# 5. On the default bridge there is no name resolution: the same call fails.
if docker run --rm "$PYTHON_IMAGE" python -c "
import socket; socket.gethostbyname('$PREFIX-classifier')" 2>/dev/null; then
    echo "error: the default bridge resolved a container name" >&2; exit 1
fi
echo "default bridge: '$PREFIX-classifier' does not resolve (use a user-defined network)"

# 6. A second server mounts the same volume: it starts without copying the model.
docker run -d --name "$PREFIX-classifier-2" --network "$NET" \
    -v "$VOLUME:/models:ro" \
    -e MODEL_PATH=/models/efficientnet_lite0.onnx -e LABELS_PATH=/models/labels.json \
    "$IMAGE" >/dev/null
wait_healthy "$PREFIX-classifier-2"
echo "second server: healthy, sharing $VOLUME (mounts: $(docker inspect -f '{{range .Mounts}}{{.Name}}:{{.Destination}} {{end}}' "$PREFIX-classifier-2"))"
# 7. The host network: no port mapping, the container listens on the VM's own network;
#    the none network: nothing but loopback (a batch job that must not reach anything).
HOST_PORT=${HOST_PORT:-$((20000 + RANDOM % 20000))}
docker run -d --name "$PREFIX-web" --network host "$PYTHON_IMAGE" \
    python -m http.server "$HOST_PORT" >/dev/null
code=""
for _ in $(seq 30); do
    code=$(python3 -c "import urllib.request as u; print(u.urlopen('http://127.0.0.1:$HOST_PORT', timeout=2).status)" 2>/dev/null) && break
    sleep 1
done
[ "$code" = 200 ] || { echo "error: the host-network server never answered on the VM" >&2; exit 1; }
echo "host network: 200 from 127.0.0.1:$HOST_PORT on the VM itself, no -p"
interfaces=$(docker run --rm --network none "$PYTHON_IMAGE" ls /sys/class/net | tr '\n' ' ')
[ "$interfaces" = "lo " ] || { echo "error: --network none has: $interfaces" >&2; exit 1; }
echo "none network: lo only"

# 8. A bind mount: a folder of the VM, seen live inside (no copy, no rebuild), read-only.
echo "image,label" > "$DATA/labels.csv"
lines() { docker run --rm -v "$DATA:/data:ro" "$PYTHON_IMAGE" sh -c 'wc -l < /data/labels.csv'; }
before=$(lines)
echo "rose.jpg,rose" >> "$DATA/labels.csv"
after=$(lines)
[ "$before" = 1 ] && [ "$after" = 2 ] || { echo "error: the bind mount saw $before then $after lines" >&2; exit 1; }
echo "bind mount: live ($before -> $after lines after an edit on the VM)"
if docker run --rm -v "$DATA:/data:ro" "$PYTHON_IMAGE" touch /data/new 2>/dev/null; then
    echo "error: a :ro bind mount was written" >&2; exit 1
fi
echo "bind mount: read-only inside (:ro)"
echo "ok"
