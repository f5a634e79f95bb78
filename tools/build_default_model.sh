#!/usr/bin/env bash
# Rebuild the shipped default model (vqaudio/pretrained/speech16k.safetensors) from nothing but this repo:
# the many-voice demo corpus, recipes/default.yaml, recipes/default_stage2.yaml,
# recipes/default_stage3.yaml then recipes/default_stage4.yaml, export, and its measurement
# (docs/model_card_default.md).
#
#   bash tools/build_default_model.sh [--minutes M] [--minutes2 M2] [--minutes3 M3] [--minutes4 M4]
#                                     [--run runs/default] [--data data/many] [--threads 2]
#
# Stages: corpus (vqaudio demo-corpus --many-voices: flite + espeak-ng, ~8 min on 2 cores), train stage 1
# into RUN (recipes/default.yaml: train.max_minutes unless --minutes), train stage 2 into RUN2
# (recipes/default_stage2.yaml from stage 1's weights: --init RUN; --minutes2), train stage 3 into RUN3
# (recipes/default_stage3.yaml from stage 2's, level 0's codebook grown to 2048 codes: --init RUN2;
# --minutes3), train stage 4 into RUN4 (recipes/default_stage4.yaml from stage 3's, speed
# perturbation: --init RUN3; --minutes4), each resumed when interrupted and skipped when finished; export
# RUN4's last step (one float16 .safetensors file plus its card JSON, replacing the shipped one
# atomically), evaluate (bench/default_model.sh -> exp/default_eval). About 7 hours on 2 CPU cores
# (140 + 80 + 95 + 85 minutes of training). Needs tools/setup.sh first (flite, espeak-ng, codec2, opus-tools; --extras eval,metrics).
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=""
minutes2=""
minutes3=""
minutes4=""
run=runs/default
data=data/many
threads=2
name=speech16k
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --minutes2) minutes2=$2; shift 2 ;;
    --minutes3) minutes3=$2; shift 2 ;;
    --minutes4) minutes4=$2; shift 2 ;;
    --run) run=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
VQAUDIO=${VQAUDIO:-.venv/bin/vqaudio}
vq() { OMP_NUM_THREADS=$threads $VQAUDIO "$@"; }

# train RECIPE OUT MINUTES [args for a new run...]: skip a finished run, resume an interrupted one (a
# resumed run keeps its own start: --init and --resume do not combine), else start it with the args
train() {
  local recipe=$1 dir=$2 mins=$3; shift 3
  [ -f "$dir/finished.json" ] && return 0
  local start=("$@")
  [ -f "$dir/latest.txt" ] && start=(--resume)
  vq train "$recipe" --out "$dir" "${start[@]}" --set "data.root=$data/manifest.tsv" \
    --set "train.threads=$threads" ${mins:+--set "train.max_minutes=$mins"}
}

vq demo-corpus "$data" --many-voices --jobs 2
train recipes/default.yaml "$run" "$minutes"
# stage 2 starts from stage 1's weights
train recipes/default_stage2.yaml "${run}2" "$minutes2" --init "$run"
# stage 3 starts from stage 2's weights, level 0's codebook grown from 1024 to 2048 codes
train recipes/default_stage3.yaml "${run}3" "$minutes3" --init "${run}2"
# stage 4 starts from stage 3's weights, with speed perturbation (new voices); its validation (seen voices
# only) does not pick it over step 0, so the last step is exported, not the best
train recipes/default_stage4.yaml "${run}4" "$minutes4" --init "${run}3"
vq export "${run}4/$(cat "${run}4/latest.txt")" -o "vqaudio/pretrained/$name.safetensors" --dtype float16 --force
cat > "vqaudio/pretrained/$name.json.tmp" <<EOF
{
  "description": "16 kHz speech, 3 levels (2200 / 450 / 225 bit/s): a codec level for any voice, voice conversion by name or from reference clips; trained on 60 synthetic voices (recipes/default.yaml, then recipes/default_stage2.yaml, recipes/default_stage3.yaml and recipes/default_stage4.yaml)",
  "card": "docs/model_card_default.md",
  "default": true
}
EOF
mv "vqaudio/pretrained/$name.json.tmp" "vqaudio/pretrained/$name.json"
bash bench/default_model.sh --model "vqaudio/pretrained/$name.safetensors" --data "$data" --threads "$threads"
