#!/usr/bin/env bash
# CPU round-trip benchmark (issue 7: a 1,000-token passage in under 2 s on 2 cores): compresses
# and decompresses bench/data/valid-passage-970tok.txt (970 tokens of the held-out valid set with
# models/c3-small's tokenizer) REPEATS times and prints each run's seconds and the median.
#   bash bench/cpu_roundtrip.sh [C3_BINARY] [MODEL]      (REPEATS=5; CHUNK_TOKENS=1280 for one chunk;
#                                                         default: the model's chunk size; BEAMS=4
#                                                         for beam search, default greedy)
set -euo pipefail
cd "$(dirname "$0")/.."
C3="${1:-build/c3}"; MODEL="${2:-models/c3-small}"; REPEATS="${REPEATS:-5}"
CHUNK=(); [ -n "${CHUNK_TOKENS:-}" ] && CHUNK=(--chunk-tokens "$CHUNK_TOKENS")
CHUNK+=(--beams "${BEAMS:-1}")
times=()
for i in $(seq "$REPEATS"); do
  line=$("$C3" roundtrip --model "$MODEL" --device cpu "${CHUNK[@]}" --json bench/data/valid-passage-970tok.txt)
  s=$(grep -o '"seconds":[0-9.e+-]*' <<<"$line" | cut -d: -f2)
  times+=("$s")
  echo "run $i: $s s ($(grep -o '"tokens":[0-9]*' <<<"$line"), $(grep -o '"latents":[0-9]*' <<<"$line"), $(grep -o '"char_precision":[0-9.]*' <<<"$line"))"
done
printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {printf "median of %d: %.2f s\n", NR, (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
