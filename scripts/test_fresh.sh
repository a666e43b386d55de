#!/usr/bin/env bash
# `make test-fresh`: `make test` as a new machine runs it, on this one. A clean clone of
# HEAD (no .venv, no .cache, no state/), a Docker engine whose data root is empty (nothing
# built: the Debian base, the VM images, the lab images all made from scratch), and empty
# pip and npm caches. FRESH_RUNS=2 runs the suite twice in a row on that engine: the second
# run starts from what the first one left, as a developer's next `make test` does.
#
# This machine has one Docker engine and no systemd: the engine you use is stopped for the
# run (its containers stop with it; `make demo`'s cohort is down until you start it again)
# and restarted as it was afterwards. Needs root. Prints each run's time and result.
set -euo pipefail

RUNS=${FRESH_RUNS:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${FRESH_DIR:-$(mktemp -d /var/tmp/workshop-fresh.XXXXXX)}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dockerd.log}

if [ "$(id -u)" -ne 0 ]; then
  echo "test-fresh: needs root (it restarts the Docker engine on an empty data root)" >&2
  exit 1
fi
if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no)" ]; then
  echo "test-fresh: tests HEAD, and the checkout has uncommitted changes: commit them first" >&2
  exit 1
fi

stop_dockerd() {
  if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
    systemctl stop docker.socket docker 2>/dev/null || true
  else
    pkill -x dockerd 2>/dev/null || true
  fi
  for _ in $(seq 1 60); do
    if ! pgrep -x dockerd >/dev/null; then
      # A stopped dockerd leaves its bridges (and their routes) behind: the next engine
      # would make a network on a subnet the host already routes elsewhere. The engine
      # that starts next makes its own again.
      for link in $(ip -o link show type bridge | awk -F': ' '{print $2}' | grep -E '^(br-|docker0$)'); do
        ip link delete "$link" 2>/dev/null || true
      done
      return 0
    fi
    sleep 1
  done
  echo "test-fresh: dockerd did not stop within 60 s" >&2
  return 1
}

start_dockerd() {  # start_dockerd [dockerd options...]
  nohup dockerd "$@" >>"$DOCKERD_LOG" 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && return 0; sleep 1; done
  echo "test-fresh: dockerd did not answer within 60 s: see $DOCKERD_LOG" >&2
  return 1
}

restore() {
  echo "test-fresh: restoring the Docker engine on its own data root"
  stop_dockerd || true
  if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
    systemctl start docker
  else
    start_dockerd
  fi
}

git clone --quiet "$ROOT" "$WORK/kit"
mkdir -p "$WORK/docker" "$WORK/pip-cache" "$WORK/npm-cache"
echo "test-fresh: a clean clone of $(git -C "$ROOT" rev-parse --short HEAD) in $WORK/kit," \
  "an empty Docker data root in $WORK/docker"
stop_dockerd
trap restore EXIT
start_dockerd --data-root "$WORK/docker" --exec-root "$WORK/docker-exec" \
  --pidfile "$WORK/dockerd.pid"

status=0
for run in $(seq 1 "$RUNS"); do
  started=$(date +%s)
  set +e
  (cd "$WORK/kit" && PIP_CACHE_DIR="$WORK/pip-cache" npm_config_cache="$WORK/npm-cache" \
    make test) 2>&1 | tee "$WORK/run-$run.log"
  code=${PIPESTATUS[0]}
  set -e
  took=$(($(date +%s) - started))
  summary=$(grep -E '^=+ .*(passed|failed|error).* in ' "$WORK/run-$run.log" | tail -1)
  echo "test-fresh: run $run of $RUNS: exit $code in $((took / 60)) min $((took % 60)) s: $summary"
  [ "$code" -eq 0 ] || status=$code
done
echo "test-fresh: logs in $WORK (run-N.log); remove $WORK when done"
exit "$status"
