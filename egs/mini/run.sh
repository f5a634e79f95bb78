#!/usr/bin/env bash
# The whole vqaudio job on the built-in demo corpus, on a CPU, in stages (Kaldi/ESPnet style).
#
#   bash egs/mini/run.sh                      # everything (about 22 min on 2 cores, 15 of them training)
#   bash egs/mini/run.sh --minutes 5          # a shorter training budget
#   bash egs/mini/run.sh --stage 3            # re-run from stage 3 on (finished work is skipped anyway)
#
# Stages (outputs):
#   0 setup      .venv with vqaudio, flite/codec2/opus-tools (apt), Resemblyzer (optional eval extra)
#   1 corpus     $data: 4 flite voices x CMU ARCTIC prompts, phone labels, manifest.tsv with a test split
#   2 train      $exp/train: recipes/mini.yaml for --minutes (TensorBoard in $exp/train/tb)
#   3 evaluate   $exp/eval.json: test sentences encoded/decoded at every level, next to Codec2 and Opus
#   4 convert    $exp/convert/: one test sentence of each voice in every voice (wav files to listen to);
#                $exp/convert.json: --conv-sentences test sentences converted between all voices, scored
#                (speaker similarity needs Resemblyzer, else n/a; MCD; phone accuracy of the codes)
#   5 analyse    $exp/analysis/: codes vs phones on the test sentences (metrics.json, report.md, PNGs)
#   6 report     $exp/report.md: all of the above on one page (vqaudio report $exp)
#
# Re-running skips finished work: corpus files that exist, a training run with finished.json (an
# interrupted one is resumed), and stages 3-5 whose output is newer than both the finished run and
# the manifest (--force re-runs them). Stage 0's optional install may fail: the run goes on.
#
# Options: --stage N --stop-stage N --minutes M (training budget, default 15) --sentences N (ARCTIC
#   prompts, default all 593) --conv-sentences N (default 54, all test sentences: 2 min on 2 cores)
#   --data DIR (default data/demo) --exp DIR (default exp/mini) --threads N (default 2) --force
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=0
stop_stage=6
minutes=15
sentences=""          # empty = all 593 prompts
conv_sentences=54       # all test sentences of the full demo
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

if run_stage 0; then
  stage_begin 0 setup
  say "stage 0: environment (.venv, flite, codec2, opus-tools; Resemblyzer for speaker similarity)"
  bash tools/setup.sh --extras eval
  stage_end
fi

if run_stage 1; then
  stage_begin 1 corpus
  say "stage 1: demo corpus -> $data (flite voices kal16, awb, rms, slt; CMU ARCTIC prompts)"
  vq demo-corpus "$data" ${sentences:+--sentences "$sentences"} --jobs 2
  stage_end
fi

if run_stage 2; then
  stage_begin 2 train
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
  training_summary "$exp/train"
  stage_end
fi

if run_stage 3; then
  stage_begin 3 evaluate
  if up_to_date "$exp/eval.json"; then
    say "stage 3: $exp/eval.json is up to date; skipping"
  else
    say "stage 3: encode/decode the test sentences at every level (and Codec2/Opus if installed) -> $exp/eval.json"
    vq evaluate --model "$exp/train" --data "$data/manifest.tsv" --split test --baselines --json "$exp/eval.json"
  fi
  stage_end
fi

if run_stage 4; then
  stage_begin 4 convert
  if up_to_date "$exp/convert.json"; then
    say "stage 4: $exp/convert.json is up to date; skipping"
  else
    voices=$(awk -F'\t' '!/^#/ && $4 == "test" { print $2 }' "$data/manifest.tsv" | sort -u | paste -sd, -)
    say "stage 4: example conversions between $voices -> $exp/convert/"
    convert_examples "$voices"
    say "stage 4: $conv_sentences test sentences converted between all voices and scored -> $exp/convert.json"
    vq eval-convert --model "$exp/train" --data "$data/manifest.tsv" --split test \
      --sentences "$conv_sentences" --labels "$data/labels" --json "$exp/convert.json"
  fi
  stage_end
fi

if run_stage 5; then
  stage_begin 5 analyse
  if up_to_date "$exp/analysis/metrics.json"; then
    say "stage 5: $exp/analysis/metrics.json is up to date; skipping"
  else
    say "stage 5: codes vs phones on the test sentences -> $exp/analysis/ (report.md, metrics.json, PNGs)"
    vq analyze --model "$exp/train" --audio "$data/manifest.tsv" --split test \
      --labels "$data/labels" --format tsv -o "$exp/analysis"
  fi
  stage_end
fi

if run_stage 6; then
  stage_begin 6 report
  say "stage 6: report -> $exp/report.md"
  vq report "$exp" --title "vqaudio mini demo report"
  stage_end
fi

stage_times
