"""convlab against PyTorch, side by side, interleaved (convlab, PyTorch, convlab, PyTorch, ...) so
that machine noise hits both. Prints a table of medians and ratios and writes all results as
JSON.

  python3 bench/compare.py                      # CPU: steps for base, wide, fcn; epochs; time to 90%
  python3 bench/compare.py --measures steps     # only the step timings (a few minutes)
  python3 bench/compare.py --device gpu         # convlab on wgpu against PyTorch on CUDA

Needs a convlab binary (default target/release/convlab; build it with
`cargo build --release`, add `--features wgpu` for --device gpu) and PyTorch
(`pip install torch numpy pillow`). Data from $CONVLAB_DATA (or --data-root).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--networks", default="base,wide,fcn")
    p.add_argument("--measures", default="steps,epoch,time-to-90")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats of the step timings")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--convlab", default=str(ROOT / "target" / "release" / "convlab"))
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--data-root", default=os.environ.get("CONVLAB_DATA"))
    p.add_argument("--out", default=str(HERE / "results.json"))
    return p


def run(cmd, env):
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(args, framework, network, what, env):
    common = ["--network", network, "--measure", what, "--steps", str(args.steps)]
    if framework == "convlab":
        cmd = [args.convlab, "bench", *common, "--device", args.device]
    else:
        device = "cuda" if args.device == "gpu" else "cpu"
        cmd = [args.python, str(HERE / "reference" / "bench.py"), *common, "--device", device,
               "--threads", str(args.threads)]
    return run(cmd, env)


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


FIGURES = [
    ("steps", "train_step_ms", "training step (ms)"),
    ("steps", "infer_ms", "inference batch (ms)"),
    ("steps", "train_images_per_s", "training images/s"),
    ("steps", "peak_rss_mib", "peak RSS, steps (MiB)"),
    ("epoch", "epoch_s", "epoch from disk (s)"),
    ("epoch", "peak_rss_mib", "peak RSS, epoch (MiB)"),
    ("time-to-90", "seconds_to_target", "time to 90% val (s)"),
]


def main():
    args = parser().parse_args()
    env = dict(os.environ)
    env["RAYON_NUM_THREADS"] = str(args.threads)
    if args.data_root:
        env["CONVLAB_DATA"] = args.data_root
    networks = args.networks.split(",")
    measures = args.measures.split(",")
    results = []
    for network in networks:
        for what in measures:
            if what == "time-to-90" and network == "fcn":
                continue
            repeats = args.repeats if what == "steps" else 1
            for _ in range(repeats):
                for framework in ("convlab", "pytorch"):
                    results.append(measure(args, framework, network, what, env))

    def values(framework, network, what, key):
        return [r[key] for r in results
                if r["framework"] == framework and r["network"] == network and r["measure"] == what
                and r.get(key) is not None]

    for network in networks:
        counts = {values(f, network, "steps", "params")[0] if values(f, network, "steps", "params") else None
                  for f in ("convlab", "pytorch")}
        if len(counts) > 1:
            print(f"warning: {network}: parameter counts differ: {counts}", file=sys.stderr)

    torch_version = next((r.get("torch") for r in results if r.get("torch")), "?")
    header = (f"{cpu_name()}, {os.cpu_count()} cores, {args.threads} threads, device {args.device}; "
              f"PyTorch {torch_version}; medians of {args.repeats} interleaved runs for steps")
    print("\n" + header)
    print(f"{'network':<8} {'figure':<24} {'convlab':>10} {'PyTorch':>10} {'ratio':>7}")
    table = []
    for network in networks:
        for what, key, label in FIGURES:
            if what not in measures:
                continue
            a, b = values("convlab", network, what, key), values("pytorch", network, what, key)
            if not a or not b:
                continue
            ca, pb = statistics.median(a), statistics.median(b)
            ratio = ca / pb if pb else float("nan")
            table.append({"network": network, "figure": label, "convlab": ca, "pytorch": pb, "ratio": ratio})
            print(f"{network:<8} {label:<24} {ca:>10.1f} {pb:>10.1f} {ratio:>6.2f}x")
    for r in results:
        t = r.get("epoch_timing")
        if r["framework"] == "convlab" and t:
            total = r["epoch_s"]
            loop = t["steps_s"] + t["data_wait_s"] + t["validation_s"] + t["saving_s"]
            share = lambda v: f"{100 * v / total:.1f}%"  # noqa: E731
            print(f"convlab {r['network']} epoch {total:.1f} s: steps {share(t['steps_s'])}, "
                  f"validation {share(t['validation_s'])}, waiting for batches {share(t['data_wait_s'])}, "
                  f"saving {share(t['saving_s'])}, loading and the rest {share(total - loop)}")
    Path(args.out).write_text(json.dumps({"machine": header, "table": table, "runs": results}, indent=1))
    print(f"\nresults: {args.out}")


if __name__ == "__main__":
    main()
