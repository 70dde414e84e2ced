#!/usr/bin/env bash
# The README's main job: sets up .venv when needed, then runs the lab experiment end to end on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/rlreason run "${1:-experiments/lab/grpo.yaml}" "${@:2}"
