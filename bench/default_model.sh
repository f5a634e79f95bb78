#!/usr/bin/env bash
# Measure a model the way docs/model_card_default.md reports the shipped one: on the many-voice demo
# corpus, seen voices next to the 8 held-out ones (prints tables, writes JSON; a benchmark, not a test).
#
#   bash bench/default_model.sh [--model M] [--data data/many] [--out exp/default_eval] [--per-speaker 3]
#                               [--threads 2] [--conv-sentences 2]
#
#   M: checkpoint, run directory or shipped model name (default: the shipped default model).
#   The corpus: vqaudio demo-corpus data/many --many-voices (tools/setup.sh installs flite and espeak-ng).
#
# Writes to --out:
#   eval.json           reconstruction per level, seen vs held-out voices, next to Codec2 / Opus on the
#                       same files (the first --per-speaker test sentences of every voice)
#   convert_seen.json   convert --speaker among 6 seen voices (flite, derived, espeak-ng)
#   convert_ref.json    convert --reference into each held-out voice from ~10 s of its train clips,
#                       from 4 seen source voices
#   analysis_flite/, analysis_espeak/
#                       codes vs phones per label family (flite's and espeak-ng's phone sets differ),
#                       held-out voices fit on the seen voices' mapping
#   speed.txt           encode + decode RTF of the codec level vs EnCodec 24 kHz's architecture
# Speaker similarity needs Resemblyzer (bash tools/setup.sh --extras eval), PESQ/STOI the metrics extra.
set -euo pipefail
cd "$(dirname "$0")/.."

model=""
data=data/many
out=exp/default_eval
per_speaker=3
threads=2
conv_sentences=2
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --per-speaker) per_speaker=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --conv-sentences) conv_sentences=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -f "$data/manifest.tsv" ] || { echo "error: no $data/manifest.tsv (vqaudio demo-corpus $data --many-voices)" >&2; exit 2; }

export COLUMNS=${COLUMNS:-160}   # the tables are wide
VQAUDIO=${VQAUDIO:-.venv/bin/vqaudio}
PYTHON=${PYTHON:-.venv/bin/python}
vq() { OMP_NUM_THREADS=$threads $VQAUDIO "$@"; }
m=(${model:+--model "$model"})
mkdir -p "$out"
t0=$SECONDS
lap() { echo "[default_model] $1: $((SECONDS - t0)) s" >&2; }

# 1. reconstruction, seen vs held-out, with the classical codecs on the same files
vq evaluate "${m[@]}" --data "$data/manifest.tsv" --split test --per-speaker "$per_speaker" --baselines \
  --json "$out/eval.json" | tee "$out/eval.txt"
lap evaluate

# 2. conversion: among seen voices (the model's table), then into held-out voices given by reference clips
seen="kal16,awb-v2,en-us+m1,en-gb+f2,en-029+Nguyen,en-gb-scotland+Lee"
sources="rms,slt-v1,en-us+f1,en-gb-x-rp+m4"
heldout=$(paste -sd, "$data/splits/heldout_speakers.txt")
vq eval-convert "${m[@]}" --data "$data/manifest.tsv" --split test --sentences "$conv_sentences" \
  --voices "$seen" --labels "$data/labels" --json "$out/convert_seen.json" | tee "$out/convert_seen.txt"
lap "convert --speaker"
vq eval-convert "${m[@]}" --data "$data/manifest.tsv" --split test --sentences "$conv_sentences" \
  --voices "$sources" --reference-voice "$heldout" --reference-seconds 10 --labels "$data/labels" \
  --json "$out/convert_ref.json" | tee "$out/convert_ref.txt"
lap "convert --reference"

# 3. codes vs phones, one label family at a time (espeak-ng voices have a '+' in their name)
say() { echo "[default_model] $*" >&2; }
force=0
source egs/common.sh   # manifest_family
for family in flite espeak; do
  manifest_family $family | awk -F'\t' -v n="$per_speaker" '/^#/ || ($4 == "test" && c[$2]++ < n)' \
    > "$out/test_$family.tsv"
  vq analyze "${m[@]}" --audio "$out/test_$family.tsv" --labels "$data/labels" --format tsv \
    -o "$out/analysis_$family" | tee "$out/analysis_$family.txt"
done
lap analyze

# 4. speed of the codec level next to EnCodec's architecture, on the same threads, in one run
if [ -f bench/encodec_speed.py ]; then
  in_use=${model:-$(vq models --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["in_use"])')}
  OMP_NUM_THREADS=$threads $PYTHON bench/encodec_speed.py --model "$in_use" --threads "$threads" --repeats 5 \
    | tee "$out/speed.txt"
  lap speed
fi
