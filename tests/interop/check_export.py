"""Checks convlab's exports with the tools users load them with (run by tests/export.rs).

  check_export.py onnx MODEL.onnx IMAGES.npy LOGITS.npy       ONNX checker + onnxruntime vs convlab
  check_export.py accuracy MODEL.onnx IMAGES.npy LABELS.npy ACCURACY
  check_export.py probs MODEL.onnx PHOTO.npy PROBS.npy         softmax vs `facade predict --save-probs`
  check_export.py safetensors FILE.safetensors EXPECTED_DIR CONFIG.json
  check_export.py tensorboard RUN_DIR                           event file vs metrics.jsonl
  check_export.py twin NAME FILE.safetensors                    the PyTorch twin's state_dict keys

IMAGES are float32 [N, C, H, W] pixels in [0, 1]. EXPECTED_DIR holds convlab's parameters in its
own layout (`layers.<i>.<name>.npy`, linear weights [in, out]); the PyTorch names and layouts are
derived here independently, from PyTorch's conventions. Exits non-zero with a message on any
mismatch."""

import json
import sys
from pathlib import Path

import numpy as np


def fail(message):
    sys.exit(f"check_export: {message}")


def session(path):
    import onnx
    import onnxruntime

    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 17:
        fail(f"opset {opset} < 17")
    meta = {p.key: p.value for p in model.metadata_props}
    for key in ("class_names", "input_size", "convlab_version", "normalization"):
        if key not in meta:
            fail(f"metadata_props lacks {key}: {sorted(meta)}")
    classes = json.loads(meta["class_names"])
    ops = {n.op_type for n in model.graph.node}
    if "Dropout" in ops:
        fail("a Dropout node in an inference graph")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"]), classes, meta


def run(sess, images):
    (name,) = [i.name for i in sess.get_inputs()]
    if name != "image" or sess.get_outputs()[0].name != "logits":
        fail(f"input/output are {name}/{sess.get_outputs()[0].name}, expected image/logits")
    return sess.run(["logits"], {"image": images.astype(np.float32)})[0]


def check_onnx(model, images, logits):
    sess, classes, meta = session(model)
    images, expected = np.load(images), np.load(logits)
    # The batch dimension is dynamic: one image, then all of them.
    single = run(sess, images[:1])
    got = run(sess, images)
    if got.shape != expected.shape:
        fail(f"logits shape {got.shape}, convlab's {expected.shape}")
    if got.shape[1] != len(classes):
        fail(f"{got.shape[1]} outputs for {len(classes)} class names")
    scale = max(1.0, float(np.abs(expected).max()))
    worst = float(np.abs(got - expected).max())
    if worst > 1e-4 * scale:
        fail(f"logits differ by {worst:.3g} (scale {scale:.3g})")
    if float(np.abs(single - got[:1]).max()) > 1e-4 * scale:
        fail("a batch of one gives other logits than the same image in a batch")
    if not np.array_equal(got.argmax(axis=1), expected.argmax(axis=1)):
        fail(f"{int((got.argmax(axis=1) != expected.argmax(axis=1)).sum())} predictions differ")
    print(f"onnx: {got.shape} logits within {worst:.2e} of convlab's (scale {scale:.3g}), "
          f"same predictions; metadata {sorted(meta)}")


def check_accuracy(model, images, labels, accuracy):
    sess, _, _ = session(model)
    images, labels = np.load(images), np.load(labels).astype(np.int64)
    predicted = np.concatenate([run(sess, images[i:i + 1000]).argmax(axis=1)
                                for i in range(0, len(images), 1000)])
    got = float((predicted == labels).mean())
    if abs(got - float(accuracy)) > 1e-12:
        fail(f"ONNX test accuracy {got}, convlab's {accuracy}")
    print(f"accuracy: ONNX {got:.4f} on {len(labels)} images = convlab's")


def check_probs(model, photo, probs):
    sess, _, _ = session(model)
    logits = run(sess, np.load(photo))[0]
    e = np.exp(logits - logits.max(axis=0, keepdims=True))
    got = e / e.sum(axis=0, keepdims=True)
    expected = np.load(probs)
    worst = float(np.abs(got - expected).max())
    if got.shape != expected.shape or worst > 1e-4:
        fail(f"probabilities {got.shape} vs {expected.shape}, differ by {worst:.3g}")
    print(f"probs: {got.shape} within {worst:.2e} of `predict --save-probs`")


def check_safetensors(path, expected_dir, config):
    from safetensors import safe_open
    from safetensors.numpy import load_file

    state = load_file(path)
    with safe_open(path, "np") as f:
        meta = f.metadata()
    layers = json.loads(Path(config).read_text())["architecture"]["layers"]
    expected = {}
    for i, layer in enumerate(layers):
        own = lambda name: np.load(Path(expected_dir) / f"layers.{i}.{name}.npy")
        kind = layer["type"]
        if kind == "conv":
            expected[f"{i}.weight"] = own("weight")
            if layer["bias"]:
                expected[f"{i}.bias"] = own("bias")
        elif kind == "conv_transpose":
            expected[f"{i}.weight"] = own("weight")
            expected[f"{i}.bias"] = own("bias")
        elif kind == "batch_norm":
            expected[f"{i}.weight"] = own("gamma")
            expected[f"{i}.bias"] = own("beta")
            expected[f"{i}.running_mean"] = own("running_mean")
            expected[f"{i}.running_var"] = own("running_var")
        elif kind == "linear":
            # nn.Linear keeps [out, in]; convlab [in, out].
            expected[f"{i}.weight"] = own("weight").T
            expected[f"{i}.bias"] = own("bias")
    tracked = {k for k in state if k.endswith("num_batches_tracked")}
    if set(state) - tracked != set(expected):
        fail(f"names differ: extra {sorted(set(state) - tracked - set(expected))}, "
             f"missing {sorted(set(expected) - set(state))}")
    for name, value in expected.items():
        got = state[name]
        if got.dtype != np.float32 or got.shape != value.shape or not np.array_equal(got, value):
            fail(f"{name}: {got.dtype}{got.shape} differs from the checkpoint's {value.shape}")
    for name in tracked:
        if state[name].dtype != np.int64 or state[name].shape != ():
            fail(f"{name}: {state[name].dtype}{state[name].shape}, expected an int64 scalar")
    for key in ("class_names", "input_size", "normalization"):
        if key not in meta:
            fail(f"__metadata__ lacks {key}: {sorted(meta)}")
    print(f"safetensors: {len(state)} tensors, names, dtypes, shapes and values as the checkpoint")


def check_tensorboard(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(Path(run_dir).glob("events.out.tfevents.*"))
    if len(files) != 1:
        fail(f"{len(files)} event files in {run_dir}")
    acc = EventAccumulator(str(files[0]))
    acc.Reload()
    log = [json.loads(line) for line in Path(run_dir, "metrics.jsonl").read_text().splitlines() if line]
    tags = acc.Tags()["scalars"]
    keys = {"train/loss": "train_loss", "val/loss": "val_loss", "lr": "lr",
            "train/accuracy": "train_accuracy", "val/accuracy": "val_accuracy",
            "train/pixel_accuracy": "train_pixel_accuracy", "val/mAP": "val_map",
            "val/mIoU": "val_miou", "val/pixel_accuracy": "val_pixel_accuracy"}
    compared = 0
    for tag in tags:
        events = acc.Scalars(tag)
        if [e.step for e in events] != [r["epoch"] for r in log]:
            fail(f"{tag}: steps {[e.step for e in events]}, log epochs {[r['epoch'] for r in log]}")
        for event, record in zip(events, log):
            want = np.float32(record[keys[tag]])
            if np.float32(event.value) != want:
                fail(f"{tag} at epoch {event.step}: {event.value} vs metrics.jsonl's {want}")
            compared += 1
    if compared < 4 * len(log):
        fail(f"only tags {tags}")
    print(f"tensorboard: {compared} scalars ({', '.join(tags)}) equal metrics.jsonl's")


def stub_torch():
    """Just enough of `torch.nn` to build bench/reference/models.py's twins and list their
    `state_dict()` keys and shapes as PyTorch names them (CI has no torch: too large)."""
    import types

    class Module:
        def __init__(self, *shapes, **buffers):
            self.params = dict(shapes)

        def state_dict(self, prefix=""):
            return {prefix + k: v for k, v in self.params.items()}

    class Sequential(Module):
        def __init__(self, *layers):
            self.layers = list(layers)

        def __iter__(self):
            return iter(self.layers)

        def state_dict(self, prefix=""):
            out = {}
            for i, layer in enumerate(self.layers):
                out.update(layer.state_dict(f"{prefix}{i}."))
            return out

    def conv(i, o, k, stride=1, padding=0, bias=True):
        return Module(("weight", (o, i, k, k)), *([("bias", (o,))] if bias else []))

    def conv_t(i, o, k, stride=1, padding=0, bias=True):
        return Module(("weight", (i, o, k, k)), ("bias", (o,)))

    def batch_norm(c):
        return Module(("weight", (c,)), ("bias", (c,)), ("running_mean", (c,)),
                      ("running_var", (c,)), ("num_batches_tracked", ()))

    def linear(i, o):
        return Module(("weight", (o, i)), ("bias", (o,)))

    nn = types.SimpleNamespace(
        Module=Module, Sequential=Sequential, Identity=Module, Conv2d=conv,
        ConvTranspose2d=conv_t, BatchNorm2d=batch_norm, BatchNorm1d=batch_norm, Linear=linear,
        ReLU=lambda: Module(), LeakyReLU=lambda slope=0.01: Module(),
        MaxPool2d=lambda k: Module(), Flatten=lambda: Module(), Dropout=lambda p=0.5: Module(),
        AdaptiveAvgPool2d=lambda size: Module())
    torch = types.ModuleType("torch")
    torch.nn = nn
    sys.modules["torch"] = torch


def check_twin(name, path):
    from safetensors.numpy import load_file

    try:
        import torch  # noqa: F401
    except ImportError:
        stub_torch()
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "reference"))
    from models import NETWORKS

    twin = NETWORKS[name]().state_dict()
    state = load_file(path)
    shapes = {k: tuple(getattr(v, "shape", v)) for k, v in twin.items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if shapes != got:
        fail(f"{name}: the twin's state_dict {sorted(set(shapes) ^ set(got))} differ, or shapes "
             f"{[(k, shapes[k], got[k]) for k in shapes if k in got and shapes[k] != got[k]]}")
    print(f"twin: bench/reference/models.py's {name} has the exported file's {len(got)} keys and shapes")


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"onnx": check_onnx, "accuracy": check_accuracy, "probs": check_probs,
     "safetensors": check_safetensors, "tensorboard": check_tensorboard,
     "twin": check_twin}[command](*args)
