#!/usr/bin/env bash
# Set up .venv (see tools/setup.sh), lint (ruff), type-check (mypy) and run the test suite:
# bash tools/test.sh [pytest args]. Stops at the first of the three that fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
echo "[test] ruff check vqaudio tests bench tools" >&2
.venv/bin/python -m ruff check vqaudio tests bench tools
echo "[test] mypy vqaudio" >&2
.venv/bin/python -m mypy vqaudio
exec .venv/bin/python -m pytest -q "$@"
