#!/usr/bin/env bash
# Train variants of recipes/default.yaml from scratch for the same number of steps, one after another,
# and score each the same way (prints a table, writes JSON; a benchmark, not a test). This is how the
# recipe's level-0 width, bitrate and augmentation were checked (docs/model_card_default.md).
#
#   bash bench/recipe_sweep.sh [--steps 6000] [--runs "base noaug k2048"] [--data data/many]
#                              [--out exp/sweep] [--per-speaker 2] [--threads 2] [--summary]
#                              [--recipe recipes/default.yaml] [--set KEY=VALUE ...] [--speed-seconds 10]
#
#   --runs       variants, from: base (the recipe), noaug (augmentation off), k2048 (level 0 K=2048,
#                2200 bit/s), wide (level 0 channels 24, max 192), narrow (12, 96)
#   --steps      equal steps per run (the schedule decays to --steps, no time budget), so a run that
#                shares the machine still trains the same; steps/s are only comparable for runs alone
#   --summary    only print the table of what --out holds
#   --set        one more override for every run's `vqaudio train` (repeatable), applied after the variant's own
#
# For each run, in --out: NAME/ (the run directory), NAME.train.log, NAME.eval.json (clean test
# sentences, the first --per-speaker of every voice, seen vs held-out), NAME.degraded.json (the same
# sentences through bench/degrade.py --condition all: noise, a room and EQ at once) and NAME.speed.txt
# (bench/encodec_speed.py: the codec level vs EnCodec's architecture, side by side); after the table,
# every run against the first file by file (vqaudio compare, NAME.vs_FIRST.*.json). A finished run is
# not trained again; delete its directory to redo it. The corpus: vqaudio demo-corpus data/many
# --many-voices. PESQ/STOI need the metrics extra (bash tools/setup.sh --extras metrics).
set -euo pipefail
cd "$(dirname "$0")/.."

steps=6000
runs="base noaug k2048"
data=data/many
out=exp/sweep
per_speaker=2
threads=2
summary_only=0
recipe=recipes/default.yaml
speed_seconds=10
common=()
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --per-speaker) per_speaker=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --summary) summary_only=1; shift ;;
    --recipe) recipe=$2; shift 2 ;;
    --set) common+=(--set "$2"); shift 2 ;;
    --speed-seconds) speed_seconds=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done

variant() {
  case "$1" in
    base) ;;
    noaug) echo "--set data.augment.reverb.prob=0 --set data.augment.noise.prob=0 --set data.augment.eq.prob=0 --set data.augment.gain.prob=0" ;;
    k2048) echo "--set model.levels.0.codebook_size=2048" ;;
    wide) echo "--set model.levels.0.channels=24 --set model.levels.0.max_channels=192" ;;
    narrow) echo "--set model.levels.0.channels=12 --set model.levels.0.max_channels=96" ;;
    *) return 1 ;;
  esac
}
for name in $runs; do
  variant "$name" > /dev/null || { echo "error: unknown run '$name' (base, noaug, k2048, wide, narrow)" >&2; exit 2; }
done

VQAUDIO=${VQAUDIO:-.venv/bin/vqaudio}
PYTHON=${PYTHON:-.venv/bin/python}
export COLUMNS=${COLUMNS:-160}

summary() {
  "$PYTHON" - "$out" $runs <<'EOF'
import json, re, sys
from pathlib import Path

out, names = Path(sys.argv[1]), sys.argv[2:]

def rows(path):
    if not path.exists():
        return None
    return {(r["level"], r["voices"]): r for r in json.loads(path.read_text())["levels"]}

def num(x, digits):
    return "-" if x is None else f"{x:.{digits}f}"  # PESQ / STOI are None without the metrics extra

def cell(r):
    return f"{num(r['pesq'], 2)} / {num(r['stoi'], 3)} / {num(r['mel_distance'], 3)}" if r else "-"

print("L0 cells: PESQ-WB / STOI / mel distance; valid mel: the validation at the last step (all levels, L0)")
print("| run | steps | steps/s | valid mel (L0) | clean seen | clean held-out | degraded seen | degraded held-out "
      "| coarsest level held-out mel | vs EnCodec |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for name in names:
    log = out / f"{name}.train.log"
    clean = rows(out / f"{name}.eval.json")
    if clean is None or not (out / name / "finished.json").exists():
        print(f"| {name} | (not finished) |")
        continue
    done = json.loads((out / name / "finished.json").read_text())
    valid = re.findall(r"step (\d+): valid mel ([\d.]+) \(L0=([\d.]+)", log.read_text() if log.exists() else "")
    degr = rows(out / f"{name}.degraded.json") or {}
    speed = out / f"{name}.speed.txt"
    ratio = re.search(r"([\d.]+)x faster", speed.read_text()) if speed.exists() else None
    mel, mel0 = valid[-1][1:] if valid and int(valid[-1][0]) == done["step"] else ("-", "-")
    top = max(level for level, _ in clean)
    print(f"| {name} | {done['step']} | {num(done.get('steps_per_second'), 2)} | {mel} ({mel0}) | {cell(clean[(0, 'seen')])} | "
          f"{cell(clean[(0, 'heldout')])} | {cell(degr.get((0, 'seen')))} | {cell(degr.get((0, 'heldout')))} | "
          f"{num(clean[(top, 'heldout')]['mel_distance'], 3)} | {ratio.group(1) + 'x' if ratio else '-'} |")
EOF
}
# every run against the first, file by file (vqaudio compare: paired 95% intervals), level 0
paired() {
  read -r -a names <<< "$runs"
  local first=${names[0]} name kind
  for name in "${names[@]:1}"; do
    for kind in eval degraded; do
      [ -f "$out/$first.$kind.json" ] && [ -f "$out/$name.$kind.json" ] || continue
      echo
      echo "$name vs $first, $([ $kind = eval ] && echo clean || echo degraded) test audio, level 0 (vqaudio compare):"
      "$VQAUDIO" compare "$out/$first.$kind.json" "$out/$name.$kind.json" --level 0 \
        --json "$out/$name.vs_$first.$kind.json" || true
    done
  done
}
if [ "$summary_only" = 1 ]; then summary; paired; exit 0; fi

[ -f "$recipe" ] || { echo "error: no recipe $recipe" >&2; exit 2; }
[ -f "$data/manifest.tsv" ] || { echo "error: no $data/manifest.tsv (vqaudio demo-corpus $data --many-voices)" >&2; exit 2; }
mkdir -p "$out"
vq() { OMP_NUM_THREADS=$threads "$VQAUDIO" "$@"; }

degraded=$out/degraded_all
if [ ! -f "$degraded/manifest.tsv" ]; then
  OMP_NUM_THREADS=$threads "$PYTHON" bench/degrade.py --data "$data/manifest.tsv" --out "$degraded" \
    --condition all --per-speaker "$per_speaker"
fi

for name in $runs; do
  dir=$out/$name
  read -r -a extra <<< "$(variant "$name")"
  if [ ! -f "$dir/finished.json" ]; then
    echo "[recipe_sweep] $name: training $steps steps ($(date +%T))" >&2
    resume=()
    [ -f "$dir/latest.txt" ] && resume=(--resume)
    vq train "$recipe" --out "$dir" "${resume[@]}" --set data.root="$data/manifest.tsv" \
      --set train.threads="$threads" --set train.max_steps="$steps" --set train.max_minutes=0 \
      --set train.eval_every=1000 "${extra[@]}" "${common[@]}" >> "$out/$name.train.log" 2>&1
  fi
  echo "[recipe_sweep] $name: evaluating ($(date +%T))" >&2
  vq evaluate --model "$dir" --data "$data/manifest.tsv" --split test --per-speaker "$per_speaker" \
    --json "$out/$name.eval.json" > "$out/$name.eval.txt"
  vq evaluate --model "$dir" --data "$degraded/manifest.tsv" --split test \
    --json "$out/$name.degraded.json" > "$out/$name.degraded.txt"
  OMP_NUM_THREADS=$threads "$PYTHON" bench/encodec_speed.py --model "$dir" --threads "$threads" --seconds "$speed_seconds" \
    --repeats 3 > "$out/$name.speed.txt"
done
summary
paired
