# Shell helpers shared by the egs/*/run.sh recipes (sourced; expects $data, $exp, $force and a `vq` and
# `say` function from the recipe; $device is optional).

up_to_date() {  # $1 exists and is newer than the finished training run and the manifest
  [ "$force" = 0 ] && [ -f "$1" ] && [ -f "$exp/train/finished.json" ] \
    && [ "$1" -nt "$exp/train/finished.json" ] && [ "$1" -nt "$data/manifest.tsv" ]
}

manifest_path() {  # audio path of a manifest row as written ($1), made usable from the repository root
  case "$1" in /*) echo "$1" ;; *) echo "$data/$1" ;; esac
}

convert_examples() {  # $1 = comma-separated voices: one test sentence of each, converted into every voice
  local voices=$1 out=$exp/convert sid voice path
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
    vq convert "$out"/originals/* --speaker "$voice" -o "$out/to_$voice" --model "$exp/train" --force \
      --device "${device:-cpu}"
  done
}
