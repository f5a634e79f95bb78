#!/usr/bin/env bash
# The GPU check, as one prepared script for a machine with a CUDA GPU (prints numbers; never run by CI):
#   1. the test suite's CUDA cases (every test parametrised over "cuda"),
#   2. recipes/vctk.yaml's model trained for --steps steps with bf16 autocast on a synthetic corpus
#      (no download: `vqaudio toy-corpus`), adversarial stage switched on halfway,
#   3. steps/s, peak GPU memory (from the run's finished.json) and encode/decode real-time factors.
#
#   bash bench/gpu_check.sh [--steps N] [--out DIR] [--python PY] [--device cpu]   (cpu: a dry run of the flow)
# Needs vqaudio's dependencies importable by PY (default: .venv/bin/python if present, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."

steps=400
out=/tmp/vqaudio_gpu_check
py=$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)
device=cuda
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --python) py=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
say() { echo "[gpu_check] $*" >&2; }
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

if [ "$device" = cuda ]; then
  "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || { echo "error: no CUDA device visible to $py (use --device cpu for a dry run)" >&2; exit 2; }
  "$py" -c "import torch; p = torch.cuda.get_device_properties(0); print(f'{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}')"
  say "1/3 CUDA tests"
  "$py" -m pytest -q -p no:cacheprovider tests -k cuda
fi

say "2/3 recipes/vctk.yaml, $steps steps on a synthetic corpus ($device) -> $out"
rm -rf "$out"
"$py" -m vqaudio toy-corpus "$out/toy" --speakers 8 --utterances 40 --seconds 3
"$py" -m vqaudio train recipes/vctk.yaml --out "$out/run" \
  --set data.kind=folder --set "data.root=$out/toy" --set data.num_workers=4 \
  --set "train.max_steps=$steps" --set train.warmup_steps=50 --set train.log_every=50 \
  --set "train.eval_every=$steps" --set "train.save_every=$steps" --set "train.device=$device" \
  --set "adversarial.start_step=$((steps / 2))" \
  $([ "$device" = cpu ] && echo "--set data.batch_size=2 --set data.segment_seconds=0.5")
"$py" - "$out/run/finished.json" <<'PY'
import json, sys
fin = json.load(open(sys.argv[1]))
mem = fin.get("peak_memory_gib")
print(f"train: {fin['step']} steps, {fin['steps_per_second']:.2f} steps/s (incl. the adversarial half), "
      f"peak memory {'n/a' if mem is None else f'{mem:.2f} GiB'}")
PY

say "3/3 encode/decode real-time factors of the trained model"
"$py" bench/speed.py --model "$out/run" --device "$device" --seconds 60 --threads 4
