#!/usr/bin/env bash
# On the GPU machine: round-trip a ~100,000-token document through models/c3-small with bounded
# memory (streamed compress and decompress), measuring time and max RSS with /usr/bin/time -v.
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
cmake -S . -B build-gpu -G Ninja -DC3_BUILD_BENCH=OFF -DC3_BUILD_TESTS=OFF > /tmp/build.log 2>&1 && ninja -C build-gpu c3 >> /tmp/build.log 2>&1 || { grep error /tmp/build.log | head; exit 1; }
python3 - <<'PY'
import lzma, json
out, n = [], 0
for line in lzma.open('shared/data/corpus/valid.jsonl.xz', 'rt'):
    t = json.loads(line)['text']; out.append(t); n += len(t)
    if n > 360000: break
open('/tmp/long.txt', 'w').write('\n\n'.join(out))
PY
TIME=/usr/bin/time; [ -x $TIME ] || TIME=""
for step in compress decompress; do
  if [ $step = compress ]; then args=(compress --model models/c3-small --device cuda /tmp/long.txt -o /tmp/long.c3 --batch 32)
  else args=(decompress --model models/c3-small --device cuda /tmp/long.c3 -o /tmp/long.out.txt --batch 96 --max-new-tokens 1400); fi
  if [ -n "$TIME" ]; then $TIME -v build-gpu/c3 "${args[@]}" 2> /tmp/$step.err; else ( time build-gpu/c3 "${args[@]}" ) 2> /tmp/$step.err; fi
  echo "== $step rc=$?"; grep -E "tokens in|Maximum resident|Elapsed|real|error" /tmp/$step.err | tail -4
done
ls -la /tmp/long.txt /tmp/long.c3 /tmp/long.out.txt
python3 - <<'PY'
a = open('/tmp/long.txt').read(); b = open('/tmp/long.out.txt').read()
import difflib
print("source chars", len(a), "output chars", len(b))
sm = difflib.SequenceMatcher(None, a[:20000], b[:20000], autojunk=False)
print("similarity of the first 20k chars (difflib ratio):", round(sm.ratio(), 4))
PY
