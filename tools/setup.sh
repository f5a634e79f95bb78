#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv and install vqaudio into it.
# Also installs the Debian packages the demo needs (flite, sox, codec2, opus-tools) when missing and possible.
# Usage: bash tools/setup.sh [--no-apt]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
missing=""
for tool in flite sox c2enc opusenc; do command -v $tool >/dev/null 2>&1 || missing="$missing $tool"; done
if [ "${1:-}" != "--no-apt" ] && [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing flite, sox, codec2 and opus-tools with apt-get (missing:$missing)" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq flite sox codec2 opus-tools >/dev/null) \
      || echo "[setup] warning: could not install flite; the demo corpus needs it (apt-get install flite)" >&2
  elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing flite, sox, codec2 and opus-tools with sudo apt-get (missing:$missing)" >&2
    (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq flite sox codec2 opus-tools >/dev/null) \
      || echo "[setup] warning: could not install flite; the demo corpus needs it" >&2
  else
    echo "[setup] warning:$missing not found; install flite sox codec2 opus-tools (apt-get) for the demo" >&2
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
