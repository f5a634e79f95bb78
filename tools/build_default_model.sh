#!/usr/bin/env bash
# Rebuild the shipped default model (vqaudio/pretrained/speech16k.safetensors) from nothing but this repo:
# the many-voice demo corpus, recipes/default.yaml, export, and its measurement (docs/model_card_default.md).
#
#   bash tools/build_default_model.sh [--minutes M] [--run runs/default] [--data data/many] [--threads 2]
#
# Stages: corpus (vqaudio demo-corpus --many-voices: flite + espeak-ng, ~8 min on 2 cores), train (the
# recipe's train.max_minutes unless --minutes; an interrupted run is resumed), export (one .safetensors
# file plus its card JSON, replacing the shipped one atomically), evaluate (bench/default_model.sh ->
# exp/default_eval). Needs tools/setup.sh first (flite, espeak-ng, codec2, opus-tools; --extras eval).
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=""
run=runs/default
data=data/many
threads=2
name=speech16k
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --run) run=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
VQAUDIO=${VQAUDIO:-.venv/bin/vqaudio}
vq() { OMP_NUM_THREADS=$threads $VQAUDIO "$@"; }

vq demo-corpus "$data" --many-voices --jobs 2
if [ ! -f "$run/finished.json" ]; then
  resume=""
  [ -f "$run/latest.txt" ] && resume="--resume"
  vq train recipes/default.yaml --out "$run" $resume --set "data.root=$data/manifest.tsv" \
    --set "train.threads=$threads" ${minutes:+--set "train.max_minutes=$minutes"}
fi
vq export "$run" -o "vqaudio/pretrained/$name.safetensors" --force
cat > "vqaudio/pretrained/$name.json.tmp" <<EOF
{
  "description": "16 kHz speech, 3 levels (2000 / 450 / 225 bit/s), any-voice codec level, voice conversion by name or reference clip; trained on 60 synthetic voices (recipes/default.yaml)",
  "card": "docs/model_card_default.md",
  "default": true
}
EOF
mv "vqaudio/pretrained/$name.json.tmp" "vqaudio/pretrained/$name.json"
bash bench/default_model.sh --model "vqaudio/pretrained/$name.safetensors" --data "$data" --threads "$threads"
