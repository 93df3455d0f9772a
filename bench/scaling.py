#!/usr/bin/env python3
"""Expected efficiency of data-parallel training (`--distributed mpi`) on N nodes, on paper,
from step times measured on one node and a model of the communication.

Reads `convlab bench --measure steps` JSON lines on stdin (a network at the global batch and
at the per-rank batches of 4, 16 and 64 nodes), e.g.

    for b in 64 16 4 1; do convlab bench --network res --measure steps --batch-size $b; done \
      | python3 bench/scaling.py

A step on N ranks takes the measured step at the per-rank batch, plus a ring allreduce of the
gradients (2 (N-1)/N x 4 bytes x parameters / bandwidth + 2 (N-1) x latency) and batch norm's
two small sums per layer (log2 N latencies each: they wait for the network, not for bytes),
with nothing overlapped. Efficiency = one node's step at the global batch / (N x that step).
"""
import json
import math
import sys

LINKS = {"10 Gbit/s": (10e9 / 8, 25e-6), "100 Gbit/s": (100e9 / 8, 3e-6)}  # bytes/s, seconds
BATCH_NORMS = {"res": 8, "wres": 8, "own": 4, "unet": 19, "fcn": 7, "base": 0, "wide": 0}
NODES = (4, 16, 64)

steps, params = {}, {}
for line in sys.stdin:
    line = line.strip()
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    if r.get("measure") != "steps":
        continue
    steps.setdefault(r["network"], {})[r["batch_size"]] = r["train_step_ms"] / 1e3
    params[r["network"]] = r["params"]

print("| network (global batch) | link | " + " | ".join(f"{n} nodes" for n in NODES) + " |")
print("|---|---|" + "---|" * len(NODES))
for net, measured in steps.items():
    batch = max(measured)
    for link, (bandwidth, latency) in LINKS.items():
        cells = []
        for n in NODES:
            per = batch // n
            if per == 0 or per not in measured:
                cells.append("-" if per == 0 else f"(measure batch {per})")
                continue
            grads = 2 * (n - 1) / n * 4 * params[net] / bandwidth + 2 * (n - 1) * latency
            norms = BATCH_NORMS.get(net, 0) * 2 * math.ceil(math.log2(n)) * latency
            step = measured[per] + grads + norms
            efficiency = measured[batch] / (n * step)
            cells.append(f"{100 * efficiency:.0f}% ({per}/rank, {100 * (grads + norms) / step:.0f}% talking)")
        print(f"| `{net}` ({batch}) | {link} | " + " | ".join(cells) + " |")
