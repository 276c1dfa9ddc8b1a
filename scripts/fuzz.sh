#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ with clang-14 (ASan + UBSan) and runs each for a given time.
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   # default: 60 s, every target
#   FUZZ_JOBS=2 runs that many targets at once; FUZZ_BUILD_ONLY=1 only builds;
#   FUZZ_REPLAY_ONLY=1 only replays fuzz/regressions/ (exit 1 if any input still fails).
# Needs: clang-14 libclang-rt-14-dev (apt). Findings (crash-*, leak-*, timeout-*, oom-*) land in
# build-fuzz/findings/<target>/; each target's log is build-fuzz/logs/<target>.log.
# Before fuzzing, every input in fuzz/regressions/<target>/ (past findings) is run once; its
# result is in build-fuzz/logs/<target>.regressions.log and a failing one fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
shift || true
ALL=(safetensors latent_file tokenizer_json tokenizer_encode tiktoken_file config_json corpus_reader)
[[ $# -gt 0 ]] && TARGETS=("$@") || TARGETS=("${ALL[@]}")
JOBS=${FUZZ_JOBS:-2}
OUT=build-fuzz
CXX=${CXX_FUZZ:-clang++-14}
command -v "$CXX" >/dev/null || { echo "fuzz.sh: $CXX not found; apt-get install clang-14 libclang-rt-14-dev" >&2; exit 1; }
mkdir -p "$OUT/obj" "$OUT/logs" "$OUT/findings"

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
FLAGS="-std=c++17 -O1 -g -fno-omit-frame-pointer -D_GLIBCXX_USE_CXX11_ABI=1 -Isrc -I. \
  -I/usr/include/torch/csrc/api/include -DC3_FUZZ_TOKENIZER_DEFAULT=\"$PWD/models/c3-small/tokenizer.json\""
LIBS="-lpcre2-8 -lutf8proc -llzma -lxxhash -lfmt -lpthread"
TORCH_LIBS="-L/usr/lib/x86_64-linux-gnu -ltorch_cpu -lc10"

# Sources each target compiles in (besides fuzz/<target>_fuzz.cpp).
UTIL="src/util/atomic_file.cpp src/util/line_reader.cpp src/util/hash.cpp src/util/progress_bar.cpp"
TOK="src/tokenizer/added_tokens.cpp src/tokenizer/bpe_tokenizer.cpp src/tokenizer/byte_level.cpp \
  src/tokenizer/normalizer.cpp src/tokenizer/pretokenizer.cpp src/tokenizer/streaming_decoder.cpp \
  src/tokenizer/utf8.cpp src/tokenizer/tiktoken_file.cpp src/tokenizer/hf_tokenizer_json.cpp"
srcs_for() {
  case $1 in
    safetensors) echo "$UTIL $TOK src/io/safetensors.cpp src/io/hf_config.cpp" ;;
    latent_file) echo "$UTIL $TOK src/io/safetensors.cpp src/io/hf_config.cpp src/c3/latent_file.cpp \
      src/c3/chunk_records.cpp" ;;
    tokenizer_json | tokenizer_encode | tiktoken_file) echo "$UTIL $TOK" ;;
    config_json) echo "$UTIL src/io/hf_config.cpp src/model/qwen2_config.cpp" ;;
    corpus_reader) echo "$UTIL" ;;
  esac
}
uses_torch() { [[ $1 == safetensors || $1 == latent_file ]]; }

# Compiles one source to an object (fuzzer instrumentation on every object), cached by the
# source's mtime; after changing a header, run with FUZZ_CLEAN=1.
[[ ${FUZZ_CLEAN:-0} == 1 ]] && rm -rf "$OUT/obj" && mkdir -p "$OUT/obj"
obj() {
  local src=$1 o="$OUT/obj/$(echo "$1" | tr / _).o"
  if [[ ! -f $o || $src -nt $o ]]; then
    $CXX $FLAGS $SAN -fsanitize=fuzzer-no-link -c "$src" -o "$o"
  fi
  echo "$o"
}

build() {
  local t=$1 objs=() s
  for s in $(srcs_for "$t") "fuzz/${t}_fuzz.cpp"; do objs+=("$(obj "$s")"); done
  local libs=$LIBS
  uses_torch "$t" && libs="$TORCH_LIBS $libs"
  $CXX $SAN -fsanitize=fuzzer "${objs[@]}" $libs -o "$OUT/${t}_fuzz"
}

for t in "${TARGETS[@]}"; do echo "fuzz.sh: building $t" >&2; build "$t"; done
[[ ${FUZZ_BUILD_ONLY:-0} == 1 ]] && exit 0

# LibTorch is not built with ASan: its one-time allocations at load show up as leaks, so leak
# detection uses fuzz/lsan.supp for them.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/fuzz/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run() {
  local t=$1 work="$OUT/corpus/$1"
  mkdir -p "$work" "$OUT/findings/$t"
  # New inputs go to build-fuzz/corpus/<t>; the committed seeds in fuzz/corpus/<t> are read only.
  # Fork mode keeps fuzzing after a finding, so one run collects all of them.
  local t0=$SECONDS
  nice -n 10 "$OUT/${t}_fuzz" "$work" "fuzz/corpus/$t" -fork=1 -ignore_crashes=1 \
    -ignore_timeouts=1 -ignore_ooms=1 -max_total_time="$SECS" -timeout=10 -rss_limit_mb=4096 \
    -max_len=65536 -artifact_prefix="$OUT/findings/$t/" >"$OUT/logs/$t.log" 2>&1 || true
  local execs found
  execs=$(grep -oE '^#[0-9]+:' "$OUT/logs/$t.log" | tail -1 | tr -d '#:')
  found=$(ls "$OUT/findings/$t" | wc -l)
  echo "fuzz.sh: $t: $((SECONDS - t0))s, ${execs:-?} execs, $found finding(s) in $OUT/findings/$t"
}

# Past findings: each must now run clean (a c3::Error is fine; UB, a crash or an OOM is not).
replay_fails=0
replay() {
  local t=$1 f log="$OUT/logs/$1.regressions.log"
  [[ -d fuzz/regressions/$t ]] || return 0
  : >"$log"
  for f in fuzz/regressions/"$t"/*; do
    if "$OUT/${t}_fuzz" -rss_limit_mb=4096 -timeout=10 "$f" >>"$log" 2>&1; then
      echo "fuzz.sh: $t regression ok:     $f" >&2
    else
      echo "fuzz.sh: $t regression FAILS:  $f (see $log)" >&2
      replay_fails=$((replay_fails + 1))
    fi
  done
}
for t in "${TARGETS[@]}"; do replay "$t"; done
if [[ ${FUZZ_REPLAY_ONLY:-0} == 1 ]]; then
  exit $((replay_fails > 0))
fi

pids=()
for t in "${TARGETS[@]}"; do
  run "$t" &
  pids+=($!)
  if (( ${#pids[@]} >= JOBS )); then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
wait
if ((replay_fails > 0)); then
  echo "fuzz.sh: $replay_fails regression input(s) still fail (fuzz/regressions/)" >&2
  exit 1
fi
