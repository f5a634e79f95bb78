#!/usr/bin/env bash
# The whole vqaudio job on the built-in demo corpus, on a CPU, in stages (Kaldi/ESPnet style): first the
# model shipped in the package, at once, on voices it never heard; then a model trained here.
#
#   bash egs/mini/run.sh                      # everything (about 30 min on 2 cores, 15 of them training)
#   bash egs/mini/run.sh --stop-stage 2       # only the shipped model (about 5 min with setup)
#   bash egs/mini/run.sh --minutes 5          # a shorter training budget
#   bash egs/mini/run.sh --stage 3            # re-run from stage 3 on (finished work is skipped anyway)
#
# Stages (outputs):
#   0 setup      .venv with vqaudio, flite/espeak-ng/codec2/opus-tools (apt), Resemblyzer (optional eval extra)
#   1 corpus     $data: 4 flite voices trained on (kal16, awb, rms, slt) and 4 held-out voices never trained
#                on by either model (awb-v3, slt-v5: derived flite voices; en-us+m7, en-gb+f4: espeak-ng),
#                CMU ARCTIC prompts, phone labels, manifest.tsv (test split; 5th column seen/heldout)
#   2 shipped    $exp/shipped: the shipped model (no --model: `vqaudio models`) on a held-out voice:
#                encode / info / decode, convert --speaker and --reference examples (codec/, convert/);
#                eval.json (seen vs held-out voices, next to Codec2 and Opus), convert.json (conversion into
#                the held-out voices from ~10 s reference clips), analysis/ (codes vs phones, flite voices)
#   3 train      $exp/train: recipes/mini.yaml for --minutes (TensorBoard in $exp/train/tb)
#   4 evaluate   $exp/eval.json: the trained model, --per-speaker test sentences of every voice
#   5 convert    $exp/convert/: one test sentence of each seen voice in every seen voice (wav files);
#                $exp/convert.json: --conv-sentences test sentences converted between the seen voices,
#                scored (speaker similarity needs Resemblyzer, else n/a; MCD; phone accuracy of the codes)
#   6 analyse    $exp/analysis/: codes vs phones on the test sentences of the flite-family voices
#   7 report     $exp/report.md: both models on one page (vqaudio report $exp)
#
# Re-running skips finished work: corpus files that exist, a training run with finished.json (an
# interrupted one is resumed), and stages 2 and 4-6 whose output is newer than both the model and
# the manifest (--force re-runs them). Stage 0's optional install may fail: the run goes on.
#
# Options: --stage N --stop-stage N --minutes M (training budget, default 15) --sentences N (ARCTIC
#   prompts, default all 593) --per-speaker N (test sentences per voice evaluated, default 12)
#   --conv-sentences N (default 16) --data DIR (default data/demo) --exp DIR (default exp/mini)
#   --threads N (default 2) --force
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=0
stop_stage=7
minutes=15
sentences=""          # empty = all 593 prompts
per_speaker=12
conv_sentences=16
data=data/demo
exp=exp/mini
threads=2
force=0

while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --minutes) minutes=$2; shift 2 ;;
    --sentences) sentences=$2; shift 2 ;;
    --per-speaker) per_speaker=$2; shift 2 ;;
    --conv-sentences) conv_sentences=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "[egs/mini] $*" >&2; }
VQAUDIO=${VQAUDIO:-.venv/bin/vqaudio}   # override to use another installation
vq() { OMP_NUM_THREADS=$threads $VQAUDIO "$@"; }
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
source egs/common.sh   # up_to_date, manifest_path, convert_examples, stage_begin/stage_end, training_summary
seen_voices=kal16,awb,rms,slt
heldout_voices=awb-v3,slt-v5,en-us+m7,en-gb+f4   # never trained on, by the shipped model nor recipes/mini.yaml

if run_stage 0; then
  stage_begin 0 setup
  say "stage 0: environment (.venv, flite, codec2, opus-tools; Resemblyzer for speaker similarity)"
  bash tools/setup.sh --extras eval
  stage_end
fi

if run_stage 1; then
  stage_begin 1 corpus
  say "stage 1: demo corpus -> $data (seen: $seen_voices; held out: $heldout_voices; CMU ARCTIC prompts)"
  vq demo-corpus "$data" ${sentences:+--sentences "$sentences"} --jobs 2 \
    --voices "$seen_voices,$heldout_voices" --heldout "$heldout_voices" --heldout-sentences-per-voice 8
  stage_end
fi

if run_stage 2; then
  stage_begin 2 shipped
  out=$exp/shipped
  mkdir -p "$out"
  shipped=$(vq models --json | python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["in_use"] if d["default"] or d["env"] else "")')
  if [ -z "$shipped" ]; then
    say "stage 2: this install ships no model (vqaudio models); skipping"
  elif up_to_date "$out/analysis/metrics.json" "$shipped"; then
    say "stage 2: $out is up to date; skipping"
  else
    echo "$shipped" > "$out/model.txt"
    first_test() {  # $1 = voice, $2 = split: its first utterance of that split
      manifest_path "$(awk -F'\t' -v v="$1" -v s="$2" '!/^#/ && $2 == v && $4 == s { print $1; exit }' "$data/manifest.tsv")"
    }
    src=$(first_test en-gb+f4 test)
    say "stage 2: the shipped model ($(basename "$shipped")) on $src, a voice it never heard -> $out/codec/"
    mkdir -p "$out/codec" "$out/convert"
    cp -L "$src" "$out/codec/original.wav"
    vq encode "$out/codec/original.wav" -o "$out/codec/original.vqa" --force
    vq info "$out/codec/original.vqa"
    vq decode "$out/codec/original.vqa" -o "$out/codec/decoded.wav" --force
    say "stage 2: convert it into kal16 (a training voice: --speaker) and into en-us+m7 (held out: --reference)"
    vq convert "$out/codec/original.wav" --speaker kal16 -o "$out/convert/as_kal16.wav" --force
    refs=()
    for p in $(awk -F'\t' '!/^#/ && $2 == "en-us+m7" && $4 == "train" { print $1 }' "$data/manifest.tsv"); do
      refs+=(--reference "$(manifest_path "$p")")
    done
    vq convert "$out/codec/original.wav" "${refs[@]}" -o "$out/convert/as_en-us+m7.wav" --force
    say "stage 2: reconstruction, seen vs held-out voices, next to Codec2 and Opus -> $out/eval.json"
    vq evaluate --data "$data/manifest.tsv" --split test --per-speaker "$per_speaker" --baselines \
      --json "$out/eval.json"
    say "stage 2: conversion from the seen voices into each held-out voice, from ~10 s of it -> $out/convert.json"
    vq eval-convert --data "$data/manifest.tsv" --split test --sentences "$conv_sentences" \
      --voices "$seen_voices" --reference-voice "$heldout_voices" --labels "$data/labels" --json "$out/convert.json"
    say "stage 2: codes vs phones, flite-family voices (seen vs held out) -> $out/analysis/"
    manifest_family flite > "$out/flite.tsv"
    vq analyze --audio "$out/flite.tsv" --split test --labels "$data/labels" --format tsv -o "$out/analysis"
  fi
  stage_end
fi

if run_stage 3; then
  stage_begin 3 train
  mkdir -p "$exp"
  if [ -f "$exp/train/finished.json" ]; then
    say "stage 3: training already finished ($exp/train/finished.json); skipping"
  else
    resume=""
    [ -f "$exp/train/latest.txt" ] && resume="--resume"
    say "stage 3: training recipes/mini.yaml for up to $minutes min -> $exp/train ${resume:+(resuming)}"
    vq train recipes/mini.yaml --out "$exp/train" $resume \
      --set "data.root=$data/manifest.tsv" --set "train.max_minutes=$minutes" --set "train.threads=$threads"
  fi
  training_summary "$exp/train"
  stage_end
fi

if run_stage 4; then
  stage_begin 4 evaluate
  if up_to_date "$exp/eval.json"; then
    say "stage 4: $exp/eval.json is up to date; skipping"
  else
    say "stage 4: encode/decode $per_speaker test sentences of every voice at every level, seen vs held-out voices (and Codec2/Opus if installed) -> $exp/eval.json"
    vq evaluate --model "$exp/train" --data "$data/manifest.tsv" --split test --per-speaker "$per_speaker" \
      --baselines --json "$exp/eval.json"
  fi
  stage_end
fi

if run_stage 5; then
  stage_begin 5 convert
  if up_to_date "$exp/convert.json"; then
    say "stage 5: $exp/convert.json is up to date; skipping"
  else
    say "stage 5: example conversions between $seen_voices -> $exp/convert/"
    convert_examples "$seen_voices"
    say "stage 5: $conv_sentences test sentences converted between the seen voices and scored -> $exp/convert.json"
    vq eval-convert --model "$exp/train" --data "$data/manifest.tsv" --split test --voices "$seen_voices" \
      --sentences "$conv_sentences" --labels "$data/labels" --json "$exp/convert.json"
  fi
  stage_end
fi

if run_stage 6; then
  stage_begin 6 analyse
  if up_to_date "$exp/analysis/metrics.json"; then
    say "stage 6: $exp/analysis/metrics.json is up to date; skipping"
  else
    say "stage 6: codes vs phones on the test sentences of the flite voices -> $exp/analysis/ (report.md, metrics.json, PNGs)"
    manifest_family flite > "$exp/flite.tsv"
    vq analyze --model "$exp/train" --audio "$exp/flite.tsv" --split test \
      --labels "$data/labels" --format tsv -o "$exp/analysis"
  fi
  stage_end
fi

if run_stage 7; then
  stage_begin 7 report
  say "stage 7: report -> $exp/report.md"
  vq report "$exp" --title "vqaudio mini demo report"
  stage_end
fi

stage_times
