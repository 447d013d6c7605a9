#!/usr/bin/env bash
# The GPU checks of issue 13, item 4, on one CUDA device in at most ~8 minutes (see
# gpu_check.py for what it prints). Without CUDA it says so and exits 0.
#   benchmarks/gpu_check.sh [--cap-gb 8] [--skip-sweep]
# PYTHON: the interpreter with vtd installed (default: the project's .venv, else python3).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
    if [[ -x "$root/.venv/bin/python" ]]; then python="$root/.venv/bin/python"; else python=python3; fi
fi
cd "$root"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
exec timeout 480 "$python" benchmarks/gpu_check.py "$@"
