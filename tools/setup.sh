#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv and install vqaudio into it.
# Also installs the Debian packages the demo needs (flite, sox) when they are missing and we can.
# Usage: bash tools/setup.sh [--no-apt]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ "${1:-}" != "--no-apt" ] && ! command -v flite >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing flite and sox with apt-get" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq flite sox >/dev/null) \
      || echo "[setup] warning: could not install flite; the demo corpus needs it (apt-get install flite)" >&2
  elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing flite and sox with sudo apt-get" >&2
    (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq flite sox >/dev/null) \
      || echo "[setup] warning: could not install flite; the demo corpus needs it" >&2
  else
    echo "[setup] warning: flite not found; install it (e.g. apt-get install flite) for the demo corpus" >&2
  fi
fi
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv" >&2
  "$PY" -m venv .venv
fi
stamp=.venv/.vqaudio-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[setup] installing vqaudio and its dependencies into .venv (first time: a few minutes)" >&2
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q -e ".[test]"
  touch "$stamp"
fi
