#!/usr/bin/env bash
# make demo: a simulated cohort run through the whole day on this machine.
#   1. the lab cloud (student VMs, classroom registry)      workshop cloud up
#   2. before class: model, images, lab archives            workshop prepare
#   3. provisioning, labs delivered, readiness table        ansible-playbook site.yml
#   4. one student finishes Activity 1 (the reference solution), the other leaves the
#      starter; their work is checked on their VMs          workshop check
#   5. the cohort report and the login cards                workshop report / cards
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/.venv/bin
export PATH=$BIN:$PATH
COHORT=${DEMO_COHORT:-lab}
STUDENTS=${DEMO_STUDENTS:-2}
LAB=02-image-classifier
STATE=${WORKSHOP_STATE_DIR:-$PWD/state}/$COHORT
started=$(date +%s)
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. Lab cloud: $STUDENTS student VMs and the classroom registry"
workshop cloud up --cohort "$COHORT" --students "$STUDENTS"

step "2. Before class: the model, base and lab images in the registry, the labs' archives"
workshop prepare --cohort "$COHORT"

step "3. Provisioning (site.yml): Docker, students, registry, images, labs, verification"
# Total time only (no per-task list), so the readiness table stays on the screen.
ANSIBLE_CALLBACKS_ENABLED=ansible.posix.timer ansible-playbook -i "$STATE/inventory.yml" site.yml

step "4. Activity 1: student01 finishes it (the reference solution), student02 has not started"
workshop deploy --cohort "$COHORT" --lab "$LAB" --solution --student student01
ansible -i "$STATE/inventory.yml" student-01 --become --become-user student01 \
  -m ansible.builtin.shell -a "cp -r ~/labs/$LAB/solution/. ~/labs/$LAB/" >/dev/null
# Exit 1 means "not everyone passed", which is the point here: the table says who and why.
workshop check --cohort "$COHORT" --lab "$LAB" || true

step "5. The cohort report and the login cards"
workshop report --cohort "$COHORT" --html "$STATE/report.html"
workshop cards --cohort "$COHORT" --out "$STATE/cards"
echo
echo "Report:      $STATE/report.html (open it in a browser)"
echo "Login cards: $STATE/cards/cards.pdf"
echo "Demo done in $(( $(date +%s) - started ))s. Take it down with: workshop cloud down --cohort $COHORT"
