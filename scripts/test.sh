#!/usr/bin/env bash
# The README's test command: sets up .venv when needed, then runs the whole suite on 2 workers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -n 2 --dist loadfile "$@"
