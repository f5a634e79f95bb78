#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv and install vqaudio into it.
# Also installs the Debian packages the demo needs (flite, espeak-ng, sox, codec2, opus-tools) when missing
# and possible.
# Usage: bash tools/setup.sh [--no-apt] [--extras eval[,metrics...]]
#   --no-apt        do not try apt-get
#   --extras LIST   also install these optional extras of pyproject.toml (e.g. eval: Resemblyzer, for the
#                   speaker similarity of vqaudio eval-convert); a failure is a warning, not an error
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
apt=1
extras=""
while [ $# -gt 0 ]; do
  case "$1" in
    --no-apt) apt=0; shift ;;
    --extras) extras=${2:?--extras needs a list, e.g. eval}; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "[setup] unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
packages="flite espeak-ng sox codec2 opus-tools"
missing=""
for tool in flite espeak-ng sox c2enc opusenc; do command -v $tool >/dev/null 2>&1 || missing="$missing $tool"; done
if [ "$apt" = 1 ] && [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing flite, espeak-ng, sox, codec2 and opus-tools with apt-get (missing:$missing)" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null) \
      || echo "[setup] warning: could not install $packages; the demo corpus needs flite (and espeak-ng for --many-voices)" >&2
  elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing flite, espeak-ng, sox, codec2 and opus-tools with sudo apt-get (missing:$missing)" >&2
    (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null) \
      || echo "[setup] warning: could not install $packages; the demo corpus needs flite (and espeak-ng for --many-voices)" >&2
  else
    echo "[setup] warning:$missing not found; install $packages (apt-get) for the demo" >&2
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
for extra in ${extras//,/ }; do
  # the extra's requirements as pyproject.toml lists them; pip needs no network when they are satisfied
  reqs=$(.venv/bin/python -c '
import re, sys
from importlib.metadata import requires
for r in requires("vqaudio") or []:
    spec, _, marker = r.partition(";")
    if re.search(r"extra\s*==\s*.%s." % re.escape(sys.argv[1]), marker):
        print(spec.strip())' "$extra")
  if [ -z "$reqs" ]; then
    echo "[setup] warning: vqaudio has no optional extra '$extra'" >&2
    continue
  fi
  echo "[setup] optional extra vqaudio[$extra]: $(echo $reqs)" >&2
  # shellcheck disable=SC2086
  if ! .venv/bin/python -m pip install -q --retries 1 --timeout 30 $reqs; then
    echo "[setup] warning: could not install vqaudio[$extra]; going on without it" \
      "(for eval: eval-convert reports speaker similarity as n/a)" >&2
  fi
done
