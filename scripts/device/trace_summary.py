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
