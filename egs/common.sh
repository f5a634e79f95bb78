# Shell helpers shared by the egs/*/run.sh recipes (sourced; expects $data, $exp, $force and a `vq` and
# `say` function from the recipe; $device is optional).

_stage_log=""
stage_begin() {  # $1 = stage number, $2 = name: starts the stage's clock
  _stage_num=$1 _stage_name=$2 _stage_t0=$SECONDS
}

stage_end() {  # prints the stage's wall time and keeps it for stage_times
  local d=$((SECONDS - _stage_t0))
  local t
  t=$(printf '%dm%02ds' $((d / 60)) $((d % 60)))
  say "stage $_stage_num ($_stage_name) took $t"
  _stage_log="$_stage_log  stage $_stage_num ($_stage_name): $t\n"
}

stage_times() {  # the wall time of every stage that ran, and their sum
  [ -n "$_stage_log" ] || return 0
  local d=$SECONDS
  say "wall time per stage:"
  printf "$_stage_log" >&2
  say "  total: $(printf '%dm%02ds' $((d / 60)) $((d % 60)))"
}

training_summary() {  # $1 = run directory: how training ended, and a warning when the budget cut it short
  [ -f "$1/finished.json" ] || return 0
  python3 - "$1/finished.json" <<'PY' >&2 || true
import json, sys
f = json.load(open(sys.argv[1]))
rate = f.get("steps_per_second")
speed = f" at {rate:.2f} steps/s" if rate else ""
threads = f" on {f['threads']} threads" if f.get("threads") else ""
print(f"[egs] training: {f['step']} steps{speed}{threads} ({f['reason']})")
if f["reason"] == "time_budget" and f.get("max_steps") and f["step"] < f["max_steps"]:
    print(f"[egs] NOTE: the {f.get('max_minutes', 0):g}-min budget ended training at step {f['step']} of "
          f"the recipe's {f['max_steps']}, at {rate or 0:.2f} steps/s: scores depend on the steps reached, "
          "so compare them with runs of as many steps (the README states its steps and steps/s)")
PY
}

up_to_date() {  # $1 exists and is newer than the model ($2, default the finished training run) and the manifest
  local model=${2:-$exp/train/finished.json}
  [ "$force" = 0 ] && [ -f "$1" ] && [ -f "$model" ] && [ "$1" -nt "$model" ] && [ "$1" -nt "$data/manifest.tsv" ]
}

manifest_family() {  # $1 = flite|espeak: the manifest's rows of that label family (espeak-ng voices have a
  # '+'), paths made absolute, so that analyze compares one phone set at a time
  local root pick
  root=$(cd "$data" && pwd)
  if [ "$1" = espeak ]; then pick='$2 ~ /[+]/'; else pick='$2 !~ /[+]/'; fi
  awk -F'\t' -v root="$root" "/^#/ { print; next } $pick { if (\$1 !~ /^\//) \$1 = root \"/\" \$1; print }" OFS='\t' \
    "$data/manifest.tsv"
}

manifest_path() {  # audio path of a manifest row as written ($1), made usable from the repository root
  case "$1" in /*) echo "$1" ;; *) echo "$data/$1" ;; esac
}

convert_examples() {  # $1 = comma-separated voices: one test sentence of each, converted into every voice
  # $2 = model (default $exp/train), $3 = output folder (default $exp/convert)
  local voices=$1 model=${2:-$exp/train} out=${3:-$exp/convert} sid voice path
  sid=$(awk -F'\t' -v voices="$voices" '
    BEGIN { n = split(voices, v, ","); for (i = 1; i <= n; i++) want[v[i]] = 1 }
    !/^#/ && $4 == "test" && ($2 in want) { f = $1; sub(/.*\//, "", f); sub(/\.[^.]*$/, "", f); c[f]++ }
    END { for (f in c) if (c[f] == n) print f }' "$data/manifest.tsv" | sort | head -n 1)
  if [ -z "$sid" ]; then
    say "  no test sentence is spoken by all of $voices; no examples"
    return 0
  fi
  rm -rf "$out" && mkdir -p "$out/originals"
  for voice in ${voices//,/ }; do
    path=$(awk -F'\t' -v spk="$voice" -v sid="$sid" '
      !/^#/ && $4 == "test" && $2 == spk { f = $1; sub(/.*\//, "", f); sub(/\.[^.]*$/, "", f); if (f == sid) { print $1; exit } }' \
      "$data/manifest.tsv")
    path=$(manifest_path "$path")
    cp -L "$path" "$out/originals/$voice.${path##*.}"
  done
  for voice in ${voices//,/ }; do
    say "  $sid of every voice as $voice -> $out/to_$voice/"
    mkdir -p "$out/to_$voice"
    vq convert "$out"/originals/* --speaker "$voice" -o "$out/to_$voice" --model "$model" --force \
      --device "${device:-cpu}"
  done
}
