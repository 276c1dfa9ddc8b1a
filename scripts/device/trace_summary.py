#!/usr/bin/env python3
"""Summarises a Chrome trace from C3_TRAIN_TRACE (or torch.profiler): GPU kernel time by kernel
name, and the share of the traced wall time the GPU was busy.  Usage: trace_summary.py trace.json"""
import collections, json, sys

ev = json.load(open(sys.argv[1]))
ev = ev["traceEvents"] if isinstance(ev, dict) else ev
kern = [e for e in ev if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset") and "dur" in e]
if not kern:
    sys.exit("no GPU kernels in the trace")
by = collections.Counter()
cnt = collections.Counter()
for e in kern:
    by[e["name"][:90]] += e["dur"]
    cnt[e["name"][:90]] += 1
busy = sum(by.values())
t0 = min(e["ts"] for e in kern); t1 = max(e["ts"] + e["dur"] for e in kern)
print(f"kernels: {len(kern)}, GPU busy {busy/1e3:.1f} ms of {(t1-t0)/1e3:.1f} ms span ({100*busy/(t1-t0):.0f}%)")
for name, us in by.most_common(25):
    print(f"{us/1e3:9.2f} ms {100*us/busy:5.1f}%  x{cnt[name]:<6d} {name}")

# Host side: which CPU ops take the most wall time (inclusive), to see what keeps the GPU idle.
cpu = [e for e in ev if e.get("cat") == "cpu_op" and "dur" in e]
if cpu:
    tot, n = collections.Counter(), collections.Counter()
    for e in cpu:
        tot[e["name"][:70]] += e["dur"]
        n[e["name"][:70]] += 1
    print(f"\nCPU ops: {len(cpu)}; top 20 by inclusive time")
    for name, us in tot.most_common(20):
        print(f"{us/1e3:9.2f} ms  x{n[name]:<6d} {us/n[name]:8.1f} us/call  {name}")

# Which CPU op stacks launched the ATen element-wise, copy and reduction kernels (the glue around
# the GEMMs): a kernel's launch carries its correlation id; the CPU ops enclosing that launch on
# its thread name the source (e.g. "aten::linear > aten::to": autocast's weight casts). Kernels
# replayed from a CUDA graph have no launch of their own and count as "(graph replay)".
glue_marks = ("elementwise_kernel", "reduce_kernel", "copy_kernel")
launch = {e["args"].get("correlation"): e for e in ev
          if e.get("cat") == "cuda_runtime" and "args" in e}
ops_by_tid = collections.defaultdict(list)
for e in cpu:
    ops_by_tid[e["tid"]].append(e)
src_us, src_n = collections.Counter(), collections.Counter()
for e in kern:
    if not any(m in e["name"] for m in glue_marks):
        continue
    r = launch.get(e.get("args", {}).get("correlation"))
    if r is None:
        key = "(graph replay)"
    else:
        inside = sorted((o for o in ops_by_tid[r["tid"]] if o["ts"] <= r["ts"] <= o["ts"] + o["dur"]),
                        key=lambda o: o["ts"])
        key = " > ".join(o["name"][:40] for o in inside[-4:]) or "(no CPU op: a graph replay)"
    src_us[key] += e["dur"]
    src_n[key] += 1
if src_us:
    print("\nElement-wise, copy and reduction kernels by the CPU ops that launched them (top 15)")
    for key, us in src_us.most_common(15):
        print(f"{us/1e3:9.2f} ms  x{src_n[key]:<6d} {key}")
