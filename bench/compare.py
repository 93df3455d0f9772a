"""convlab against PyTorch, side by side, interleaved (convlab, PyTorch, convlab, PyTorch, ...) so
that machine noise hits both. Prints a table of medians and ratios and writes all results as
JSON.

  python3 bench/compare.py                      # CPU: steps for every network; epochs; time to 90%
  python3 bench/compare.py --measures steps     # only the step timings (a few minutes)
  python3 bench/compare.py --device gpu         # convlab on wgpu against PyTorch on CUDA
  python3 bench/compare.py --engines cpu        # only convlab's own CPU engine (default: cpu,burn)
  python3 bench/compare.py --precision bf16 --measures steps --engines cpu
                                                # bf16: convlab's --precision bf16 against
                                                # PyTorch's autocast + channels_last

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
    p.add_argument("--networks", default="base,wide,own,res,fcn,unet")
    p.add_argument("--measures", default="steps,epoch,time-to-90")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats of the step timings")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--convlab", default=str(ROOT / "target" / "release" / "convlab"))
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--engines", default=None,
                   help="convlab engines to time, comma-separated (default: cpu,burn on the CPU, burn on a GPU)")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="bf16: convlab's --precision bf16 (CPU engine) against PyTorch's autocast "
                        "with channels_last (steps only)")
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
    common = ["--network", network, "--measure", what, "--steps", str(args.steps),
              "--precision", args.precision]
    if framework.startswith("convlab"):
        engine = framework.split(" ", 1)[1]
        cmd = [args.convlab, "bench", *common, "--device", args.device, "--engine", engine]
        result = run(cmd, env)
        result["framework"] = framework
        return result
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
    engines = (args.engines or ("burn" if args.device == "gpu" else "cpu,burn")).split(",")
    if args.precision == "bf16" and (engines != ["cpu"] or measures != ["steps"]):
        raise SystemExit("--precision bf16: needs --engines cpu --measures steps (burn computes "
                         "in fp32; PyTorch's side is timed for steps)")
    frameworks = [f"convlab {e}" for e in engines] + ["pytorch"]
    results = []
    for network in networks:
        for what in measures:
            if what == "time-to-90" and network in ("fcn", "unet"):
                continue
            repeats = args.repeats if what == "steps" else 1
            for _ in range(repeats):
                for framework in frameworks:
                    results.append(measure(args, framework, network, what, env))

    def values(framework, network, what, key):
        return [r[key] for r in results
                if r["framework"] == framework and r["network"] == network and r["measure"] == what
                and r.get(key) is not None]

    for network in networks:
        counts = {values(f, network, "steps", "params")[0] if values(f, network, "steps", "params") else None
                  for f in frameworks}
        if len(counts) > 1:
            print(f"warning: {network}: parameter counts differ: {counts}", file=sys.stderr)

    torch_version = next((r.get("torch") for r in results if r.get("torch")), "?")
    peak = None
    if args.device == "cpu":
        peak = run([args.convlab, "bench", "--measure", "peak"], env)
    peak_text = f"; fp32 peak {peak['peak_gflops']:.0f} GFLOP/s ({peak['isa']})" if peak else ""
    if peak and peak.get("peak_bf16_gflops"):
        peak_text += f", bf16 peak {peak['peak_bf16_gflops']:.0f} GFLOP/s"
    header = (f"{cpu_name()}, {os.cpu_count()} cores, {args.threads} threads, device {args.device}, "
              f"precision {args.precision}; "
              f"PyTorch {torch_version}; medians of {args.repeats} interleaved runs for steps{peak_text}")
    print("\n" + header)
    ours = frameworks[:-1]
    print(f"{'network':<8} {'figure':<24} " + " ".join(f"{f:>13}" for f in ours)
          + f" {'PyTorch':>10} " + " ".join(f"{'ratio ' + f.split()[1]:>11}" for f in ours))
    table = []
    for network in networks:
        for what, key, label in FIGURES:
            if what not in measures:
                continue
            theirs = values("pytorch", network, what, key)
            mine = {f: values(f, network, what, key) for f in ours}
            if not theirs or not all(mine.values()):
                continue
            pb = statistics.median(theirs)
            med = {f: statistics.median(v) for f, v in mine.items()}
            ratios = {f: (m / pb if pb else float("nan")) for f, m in med.items()}
            table.append({"network": network, "figure": label, "pytorch": pb,
                          **{f: m for f, m in med.items()}, **{f"ratio {f}": r for f, r in ratios.items()}})
            print(f"{network:<8} {label:<24} " + " ".join(f"{med[f]:>13.1f}" for f in ours)
                  + f" {pb:>10.1f} " + " ".join(f"{ratios[f]:>10.2f}x" for f in ours))
    for network in networks:
        rates = values("convlab cpu", network, "steps", "products_gflops")
        shares = values("convlab cpu", network, "steps", "products_share_of_step")
        if rates and peak:
            rate = statistics.median(rates)
            of_peaks = f"{100 * rate / peak['peak_gflops']:.0f}% of the fp32 peak"
            if args.precision == "bf16" and peak.get("peak_bf16_gflops"):
                of_peaks += f", {100 * rate / peak['peak_bf16_gflops']:.0f}% of the bf16 peak"
            print(f"convlab cpu {network}: matrix products {100 * statistics.median(shares):.0f}% of a "
                  f"training step, at {rate:.0f} GFLOP/s = {of_peaks}")
    for r in results:
        t = r.get("epoch_timing")
        if r["framework"].startswith("convlab") and t:
            total = r["epoch_s"]
            loop = t["steps_s"] + t["data_wait_s"] + t["validation_s"] + t["saving_s"]
            share = lambda v: f"{100 * v / total:.1f}%"  # noqa: E731
            print(f"{r['framework']} {r['network']} epoch {total:.1f} s: steps {share(t['steps_s'])}, "
                  f"validation {share(t['validation_s'])}, waiting for batches {share(t['data_wait_s'])}, "
                  f"saving {share(t['saving_s'])}, loading and the rest {share(total - loop)}")
    Path(args.out).write_text(json.dumps({"machine": header, "peak": peak, "table": table, "runs": results},
                                         indent=1))
    print(f"\nresults: {args.out}")


if __name__ == "__main__":
    main()
