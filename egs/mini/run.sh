#!/usr/bin/env bash
# The whole vqaudio job on the built-in demo corpus, on a CPU, in stages (Kaldi/ESPnet style).
#
#   bash egs/mini/run.sh                      # everything: setup, data, train (15 min), evaluate, analyse, report
#   bash egs/mini/run.sh --minutes 5          # a shorter training budget
#   bash egs/mini/run.sh --stage 3            # re-run from stage 3 on; finished stages are skipped anyway
#
# Stages: 0 setup (.venv, flite) | 1 demo corpus (flite x CMU ARCTIC) | 2 train recipes/mini.yaml
#         3 encode/decode the test sentences at every level | 4 codes vs phones on the test sentences
#         5 write exp/mini/report.md
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=0
stop_stage=5
minutes=15
sentences=""          # empty = all 593 prompts
data=data/demo
exp=exp/mini
threads=2

while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --minutes) minutes=$2; shift 2 ;;
    --sentences) sentences=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "[egs/mini] $*" >&2; }
VQAUDIO=${VQAUDIO:-.venv/bin/vqaudio}   # override to use another installation
PYTHON=${PYTHON:-.venv/bin/python}
vq() { $VQAUDIO "$@"; }
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }

if run_stage 0; then
  say "stage 0: environment (.venv, flite)"
  bash tools/setup.sh
fi

if run_stage 1; then
  say "stage 1: demo corpus -> $data (flite voices kal16, awb, rms, slt; CMU ARCTIC prompts)"
  vq demo-corpus "$data" ${sentences:+--sentences "$sentences"} --jobs 2
fi

if run_stage 2; then
  mkdir -p "$exp"
  if [ -f "$exp/train/finished.json" ]; then
    say "stage 2: training already finished ($exp/train/finished.json); skipping"
  else
    resume=""
    [ -f "$exp/train/latest.txt" ] && resume="--resume"
    say "stage 2: training recipes/mini.yaml for up to $minutes min -> $exp/train ${resume:+(resuming)}"
    vq train recipes/mini.yaml --out "$exp/train" $resume \
      --set "data.root=$data/manifest.tsv" --set "train.max_minutes=$minutes" --set "train.threads=$threads"
  fi
fi

if run_stage 3; then
  say "stage 3: encode/decode the test sentences at every level -> $exp/eval.json"
  OMP_NUM_THREADS=$threads vq evaluate --model "$exp/train" --data "$data/manifest.tsv" --split test \
    --baselines --json "$exp/eval.json"
fi

if run_stage 4; then
  say "stage 4: codes vs phones on the test sentences -> $exp/analysis/report.md"
  OMP_NUM_THREADS=$threads vq analyze --model "$exp/train" --audio "$data/manifest.tsv" --split test \
    --labels "$data/labels" --format tsv -o "$exp/analysis"
fi

if run_stage 5; then
  say "stage 5: report -> $exp/report.md"
  $PYTHON - "$exp" <<'PY'
import json, sys
from pathlib import Path
exp = Path(sys.argv[1])
ev = json.loads((exp / "eval.json").read_text())
fin = json.loads((exp / "train" / "finished.json").read_text())
fmt = lambda v, s: "n/a" if v is None else format(v, s)
lines = [
    "# vqaudio mini demo report", "",
    f"Model: `{exp}/train` (recipes/mini.yaml), {fin['step']} training steps ({fin['reason']}), "
    f"best validation mel distance {fmt(fin['best_valid_mel'], '.3f')}.", "",
    f"Reconstruction of {ev['utterances']} held-out test utterances (4 flite voices):", "",
    "| codec | bitrate (bit/s) | mel distance | SI-SDR (dB) | PESQ-WB | STOI |",
    "| --- | --- | --- | --- | --- | --- |",
]
for s in ev["levels"]:
    lines.append(f"| {s['name']} | {s['bitrate']:.0f} | {s['mel_distance']:.3f} | {s['si_sdr']:.2f} | "
                 f"{fmt(s['pesq'], '.2f')} | {fmt(s['stoi'], '.3f')} |")
an = json.loads((exp / "analysis" / "metrics.json").read_text())
lines += ["", f"Codes vs phones on {an['utterances']} test utterances (details: analysis/report.md):", "",
          "| level | mapping acc. | random codes | majority | PNMI | speaker probe | chance |",
          "| --- | --- | --- | --- | --- | --- | --- |"]
for lv, m in an["levels"].items():
    lines.append(f"| {lv} | {m['mapping_accuracy']:.1%} | {m['random_baseline_accuracy']:.1%} | "
                 f"{m['majority_baseline_accuracy']:.1%} | {m['pnmi']:.3f} | {m['speaker_probe_accuracy']:.1%} | "
                 f"{m['speaker_chance']:.1%} |")
lines += ["", "![codes vs phones](analysis/cooccurrence_level1.png)"]
(exp / "report.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
fi
