#!/usr/bin/env bash
# vqaudio on CSTR VCTK 0.92 (110 speakers, 44 h) from your copy of the corpus, in stages (Kaldi/ESPnet style).
#
#   bash egs/vctk/run.sh --vctk /data/VCTK-Corpus-0.92                       # one GPU (or CPU: slow)
#   bash egs/vctk/run.sh --vctk /data/VCTK-Corpus-0.92 --ngpu 8              # torchrun, batch size per GPU
#   bash egs/vctk/run.sh --vctk /data/VCTK-Corpus-0.92 --textgrids mfa/vctk  # with the analysis stage
#   bash egs/vctk/run.sh --vctk /data/VCTK-Corpus-0.92 --stage 3             # re-run from stage 3 on
#
# Stages (outputs):
#   0 setup      .venv with vqaudio, codec2/opus-tools (apt), Resemblyzer (optional eval extra)
#   1 data       $data/manifest.tsv: every mic1 recording; the --test-sentences shared sentences that most
#                speakers read (rainbow passage, elicitation paragraph) held out for every speaker as the
#                test split (linked as $data/wavs/<spk>/shared_<NNN>.flac so that renditions pair up by
#                name), 2 validation utterances per speaker; $data/voices.txt (2 female + 2 male);
#                $data/labels/ from --textgrids (MFA TextGrids named like the VCTK files)
#   2 train      $exp/train: --config (default recipes/vctk.yaml) on the manifest, --set overrides last
#   3 evaluate   $exp/eval.json: test sentences encoded/decoded at every level, next to Codec2 and Opus
#   4 convert    $exp/convert/: one test sentence of each conversion voice in every one of them (wavs);
#                $exp/convert.json: the test sentences converted between the conversion voices, scored
#                (speaker similarity with Resemblyzer, MCD against the target's own rendition of the
#                same sentence, phone accuracy of the codes when --textgrids is given)
#   5 analyse    $exp/analysis/: codes vs phones on the test sentences; skipped without --textgrids
#   6 report     $exp/report.md: all of the above on one page (vqaudio report $exp)
#
# Re-running skips finished work: a training run with finished.json (an interrupted one is resumed)
# and stages 3-5 whose output is newer than both the finished run and the manifest (--force re-runs
# them). Stage 1 is cheap (file names only) and always re-run; unchanged files keep their mtime.
#
# Options: --vctk DIR (needed by stage 1) --data DIR (default data/vctk) --exp DIR (default exp/vctk)
#   --config YAML (default recipes/vctk.yaml) --set KEY=VALUE (repeatable, passed to vqaudio train)
#   --ngpu N (default 1; N > 1 trains with torchrun --standalone --nproc-per-node N) --device D (auto,
#   cpu, cuda ...; default auto) --textgrids DIR --mic mic1|mic2 --test-sentences N (default 8)
#   --conv-voices A,B,... (default $data/voices.txt) --threads N (CPU threads; default: torch's)
#   --stage N --stop-stage N --force
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=0
stop_stage=6
vctk=""
data=data/vctk
exp=exp/vctk
config=recipes/vctk.yaml
sets=()
ngpu=1
device=auto
textgrids=""
mic=mic1
test_sentences=8
conv_voices=""
threads=""
force=0

while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --vctk) vctk=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    --ngpu) ngpu=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --textgrids) textgrids=$2; shift 2 ;;
    --mic) mic=$2; shift 2 ;;
    --test-sentences) test_sentences=$2; shift 2 ;;
    --conv-voices) conv_voices=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "error: $*" >&2; exit 2; }
say() { echo "[egs/vctk] $*" >&2; }
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
if run_stage 1; then
  [ -n "$vctk" ] || die "--vctk DIR is required: the VCTK-Corpus-0.92 folder (with wav48_silence_trimmed/ and txt/)"
  [ -d "$vctk" ] || die "--vctk $vctk: no such folder"
fi
[ -z "$textgrids" ] || [ -d "$textgrids" ] || die "--textgrids $textgrids: no such folder"
[ "$ngpu" -ge 1 ] 2>/dev/null || die "--ngpu expects a number >= 1, got '$ngpu'"
[ -f "$config" ] || die "--config $config: no such file"

VQAUDIO=${VQAUDIO:-.venv/bin/vqaudio}   # override to use another installation
PYTHON=${PYTHON:-.venv/bin/python}
if [ -n "$threads" ]; then
  export OMP_NUM_THREADS=$threads
  sets=(--set "train.threads=$threads" "${sets[@]}")
fi
vq() { $VQAUDIO "$@"; }
source egs/common.sh   # up_to_date, manifest_path, convert_examples, stage_begin/stage_end, training_summary

if run_stage 0; then
  stage_begin 0 setup
  say "stage 0: environment (.venv, codec2, opus-tools; Resemblyzer for speaker similarity)"
  bash tools/setup.sh --extras eval
  stage_end
fi

if run_stage 1; then
  stage_begin 1 manifest
  say "stage 1: manifest of $vctk ($mic) with $test_sentences shared sentences held out -> $data/manifest.tsv"
  $PYTHON egs/vctk/local/prepare.py --vctk "$vctk" --out "$data" --mic "$mic" \
    --test-sentences "$test_sentences" ${textgrids:+--textgrids "$textgrids"}
  stage_end
fi

if run_stage 2; then
  stage_begin 2 train
  mkdir -p "$exp"
  if [ -f "$exp/train/finished.json" ]; then
    say "stage 2: training already finished ($exp/train/finished.json); skipping"
  else
    resume=()
    [ -f "$exp/train/latest.txt" ] && resume=(--resume)
    args=(train "$config" --out "$exp/train" "${resume[@]}" --set data.kind=tsv --set "data.root=$data/manifest.tsv"
      --set "data.mic=$mic" --set "train.device=$device" "${sets[@]}")
    if [ "$ngpu" -gt 1 ]; then
      say "stage 2: training $config on $ngpu devices ($device, torchrun) -> $exp/train${resume[*]:+ (resuming)}"
      $PYTHON -m torch.distributed.run --standalone --nproc-per-node "$ngpu" -m vqaudio "${args[@]}"
    else
      say "stage 2: training $config on $device -> $exp/train${resume[*]:+ (resuming)}; TensorBoard: $exp/train/tb"
      vq "${args[@]}"
    fi
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
    vq evaluate --model "$exp/train" --data "$data/manifest.tsv" --split test --baselines \
      --json "$exp/eval.json" --device "$device"
  fi
  stage_end
fi

if run_stage 4; then
  stage_begin 4 convert
  if up_to_date "$exp/convert.json"; then
    say "stage 4: $exp/convert.json is up to date; skipping"
  else
    [ -n "$conv_voices" ] || conv_voices=$(paste -sd, "$data/voices.txt")
    labels=()
    [ -n "$textgrids" ] && labels=(--labels "$data/labels")
    say "stage 4: example conversions between $conv_voices -> $exp/convert/"
    convert_examples "$conv_voices"
    say "stage 4: the test sentences converted between $conv_voices and scored -> $exp/convert.json"
    vq eval-convert --model "$exp/train" --data "$data/manifest.tsv" --split test --voices "$conv_voices" \
      --sentences "$test_sentences" "${labels[@]}" --json "$exp/convert.json" --device "$device"
  fi
  stage_end
fi

if run_stage 5; then
  stage_begin 5 analyse
  if [ -z "$textgrids" ]; then
    say "stage 5: skipped: no phone labels (give --textgrids DIR, MFA TextGrids of VCTK, and re-run from stage 1)"
  elif up_to_date "$exp/analysis/metrics.json"; then
    say "stage 5: $exp/analysis/metrics.json is up to date; skipping"
  else
    say "stage 5: codes vs phones on the test sentences -> $exp/analysis/ (report.md, metrics.json, PNGs)"
    vq analyze --model "$exp/train" --audio "$data/manifest.tsv" --split test \
      --labels "$data/labels" --format textgrid -o "$exp/analysis" --device "$device"
  fi
  stage_end
fi

if run_stage 6; then
  stage_begin 6 report
  say "stage 6: report -> $exp/report.md"
  vq report "$exp" --title "vqaudio on VCTK 0.92"
  stage_end
fi

stage_times
