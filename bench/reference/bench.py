"""PyTorch reference for `convlab bench`: the same measurements, the same options, one JSON line.

  python3 bench/reference/bench.py --network base --measure steps [--threads 2] [--device cpu]

Measures (see src/bench.rs for convlab's side):
- steps: median ms per training step (forward, cross-entropy, loss.item(), backward, Adam) and
  per inference batch (no_grad, result copied to the CPU) on a fixed random batch after warm-up;
- epoch: one epoch from the files on disk: load and decode, split 90/10, batch (with the same
  augmentation as convlab's recipe for the segmenter), train, validate, save a checkpoint;
- time-to-90: Fashion-MNIST, Adam lr 1e-3, batch 64, validation every --eval-every steps, until
  validation accuracy reaches --target.
--precision bf16 (steps only) runs forward and loss under `torch.autocast("cpu", torch.bfloat16)`
with the model and batch in `channels_last`, as PyTorch's CPU performance guide recommends.
Install: pip install torch numpy pillow
"""

import argparse
import contextlib
import gzip
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import NETWORKS, SEGMENTERS, parameter_count  # noqa: E402

FASHION_MEAN, FASHION_STD = 0.2860, 0.3530
FACADE_MEAN, FACADE_STD = 0.5, 0.25


def args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--network", required=True, choices=sorted(NETWORKS))
    p.add_argument("--measure", default="steps", choices=["steps", "epoch", "time-to-90"])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--target", type=float, default=0.90)
    p.add_argument("--eval-every", type=int, default=211)
    p.add_argument("--max-epochs", type=int, default=10)
    p.add_argument("--data", help="the data set's folder (default $CONVLAB_DATA/<set>, then ./data/<set>)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    return p


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def autocast(args, device):
    """bf16 products with fp32 sums, weights and optimiser (mixed precision), or plain fp32."""
    if args.precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def time_steps(args, model, device, batch):
    segmenter = args.network in SEGMENTERS
    g = torch.Generator().manual_seed(7)
    shape = (batch, 3, 256, 256) if segmenter else (batch, 1, 28, 28)
    x = (torch.rand(shape, generator=g) * 2 - 1).to(device)
    if args.precision == "bf16":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if segmenter:
        y = torch.randint(0, 5, (batch, 256, 256), generator=g).to(device)
    else:
        y = torch.randint(0, 10, (batch,), generator=g).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    train_ms = []
    for i in range(args.warmup + args.steps):
        start = time.perf_counter()
        with autocast(args, device):
            loss = F.cross_entropy(model(x), y)
        loss.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync(device)
        if i >= args.warmup:
            train_ms.append((time.perf_counter() - start) * 1e3)
    model.eval()
    infer_ms = []
    with torch.no_grad():
        for i in range(args.warmup + args.steps):
            start = time.perf_counter()
            with autocast(args, device):
                model(x).float().cpu()
            if i >= args.warmup:
                infer_ms.append((time.perf_counter() - start) * 1e3)
    return float(np.median(train_ms)), float(np.median(infer_ms))


def data_dir(args, name):
    if args.data:
        return Path(args.data)
    root = os.environ.get("CONVLAB_DATA")
    return Path(root) / name if root else Path("data") / name


def read_idx(path):
    raw = path.read_bytes() if path.exists() else gzip.decompress(path.with_suffix(path.suffix + ".gz").read_bytes())
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_fashion(args):
    d = data_dir(args, "fashion-mnist")
    gz = lambda n: d / f"{n}.gz" if (d / f"{n}.gz").exists() else d / n  # noqa: E731
    images = read_idx(gz("train-images-idx3-ubyte"))
    labels = read_idx(gz("train-labels-idx1-ubyte"))
    # Stratified 90/10 split, 600 validation images per class, as convlab's (other random draws).
    rng = np.random.default_rng(42)
    val = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:600] for c in range(10)])
    train = np.setdiff1d(np.arange(len(labels)), val)
    to_x = lambda idx: (torch.from_numpy(images[idx].astype(np.float32) / 255.0) - FASHION_MEAN).div_(FASHION_STD).unsqueeze(1)  # noqa: E731
    return to_x(train), torch.from_numpy(labels[train].astype(np.int64)), to_x(val), torch.from_numpy(labels[val].astype(np.int64))


def load_facade(args):
    from PIL import Image

    d = data_dir(args, "mini_facade") / "train"
    stems = sorted(p.stem for p in d.glob("*.jpg"))
    photos = np.stack([np.asarray(Image.open(d / f"{s}.jpg").convert("RGB")) for s in stems])
    labels = np.stack([np.asarray(Image.open(d / f"{s}.png")) for s in stems])
    order = np.random.default_rng(42).permutation(len(stems))
    n_val = round(0.1 * len(stems))
    val, train = order[:n_val], order[n_val:]
    x = torch.from_numpy(photos).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(labels.astype(np.int64))
    return x[train], y[train], x[val], y[val]


def facade_batch(x_u8, y, rng):
    """Flip and random zoom (a crop of 1/1.5 to all of the photo, resized back), as convlab's
    FlipScaleCrop; photos bilinear, labels nearest."""
    x = (x_u8.float() / 255.0 - FACADE_MEAN) / FACADE_STD
    out_x, out_y = [], []
    for i in range(x.shape[0]):
        xi, yi = x[i:i + 1], y[i:i + 1, None].float()
        if rng.random() < 0.5:
            xi, yi = xi.flip(-1), yi.flip(-1)
        side = int(256 / rng.uniform(1.0, 1.5))
        top, left = rng.integers(0, 257 - side, size=2)
        xi = F.interpolate(xi[..., top:top + side, left:left + side], size=(256, 256), mode="bilinear", align_corners=False)
        yi = F.interpolate(yi[..., top:top + side, left:left + side], size=(256, 256), mode="nearest")
        out_x.append(xi)
        out_y.append(yi[:, 0].long())
    return torch.cat(out_x), torch.cat(out_y)


def evaluate(model, x, y, device, batch, segmenter):
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = x[i:i + batch]
            if segmenter:
                xb = (xb.float() / 255.0 - FACADE_MEAN) / FACADE_STD
            pred = model(xb.to(device)).argmax(1).cpu()
            correct += (pred == y[i:i + batch]).sum().item()
            total += y[i:i + batch].numel()
    model.train()
    return correct / total


def time_epoch(args, model, device, batch):
    segmenter = args.network in SEGMENTERS
    start = time.perf_counter()
    x, y, xv, yv = load_facade(args) if segmenter else load_fashion(args)
    lr = {"base": 0.01, "wide": 1e-3, "fcn": 1e-4}[args.network]
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-5 if segmenter else 0.0)
    rng = np.random.default_rng(1)
    model.train()
    for idx in torch.from_numpy(rng.permutation(len(x))).split(batch):
        if segmenter:
            xb, yb = facade_batch(x[idx], y[idx], rng)
        else:
            xb, yb = x[idx], y[idx]
        loss = F.cross_entropy(model(xb.to(device)), yb.to(device))
        loss.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    evaluate(model, xv, yv, device, 4 if segmenter else 500, segmenter)
    with tempfile.TemporaryDirectory() as tmp:
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, Path(tmp) / "last.pt")
    sync(device)
    return time.perf_counter() - start


def time_to_accuracy(args, model, device, batch):
    x, y, xv, yv = load_fashion(args)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(42)
    trace, step = [], 0
    start = time.perf_counter()
    model.train()
    for _ in range(args.max_epochs):
        for idx in torch.randperm(len(x), generator=gen).split(batch):
            loss = F.cross_entropy(model(x[idx].to(device)), y[idx].to(device))
            loss.item()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % args.eval_every == 0:
                acc = evaluate(model, xv, yv, device, 500, False)
                t = time.perf_counter() - start
                trace.append((t, acc))
                print(f"{t:.1f}s step {step}: val accuracy {100 * acc:.2f}%", file=sys.stderr)
                if acc >= args.target:
                    return t, trace
    return None, trace


def main():
    args = args_parser().parse_args()
    if args.precision != "fp32" and args.measure != "steps":
        raise SystemExit(f"--precision {args.precision}: measured for --measure steps only")
    torch.set_num_threads(args.threads)
    torch.manual_seed(42)
    device = torch.device(args.device)
    model = NETWORKS[args.network]().to(device)
    batch = args.batch_size or (8 if args.network in SEGMENTERS else 64)
    result = {
        "framework": "pytorch",
        "network": args.network,
        "measure": args.measure,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "batch_size": batch,
        "params": parameter_count(model),
        "torch": torch.__version__,
        "precision": args.precision,
    }
    if args.measure == "steps":
        train, infer = time_steps(args, model, device, batch)
        result.update(train_step_ms=train, infer_ms=infer,
                      train_images_per_s=batch / train * 1e3, infer_images_per_s=batch / infer * 1e3)
    elif args.measure == "epoch":
        result["epoch_s"] = time_epoch(args, model, device, batch)
    else:
        seconds, trace = time_to_accuracy(args, model, device, batch)
        result.update(seconds_to_target=seconds, trace=trace)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()
