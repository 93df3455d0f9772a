#!/bin/bash
# One prepared device check for a lent GPU machine (about 6 minutes): every network's training
# step and inference on burn's wgpu backend, then a real Fashion-MNIST run trained on the GPU,
# resumed there, evaluated on the CPU engine and exported to ONNX (the engine switch, the
# checkpoint container and export across devices); and, where the machine has PyTorch, the
# side-by-side step benchmark (convlab on wgpu vs PyTorch on CUDA). Results land in $OUT.
# Needs, beside the checkout (ignored folders named in the device tool's `carry`):
#   gpu/convlab.xz        `cargo build --release --features wgpu`, stripped, xz-compressed
#   gpu/data/fashion-mnist/   a copy of the data set (30 MB)
#   .gl/*.deb             Vulkan/EGL loader packages (see the device tool's README)
# Run from the repository root: bash bench/device_check.sh
set -u
cd "$(dirname "$0")/.."
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$ICD" ] && export VK_DRIVER_FILES=$ICD
EGL=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -f "$EGL" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$EGL
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
lscpu | grep "Model name" | tee -a "$OUT/gpu.txt"
xz -dc gpu/convlab.xz > /tmp/convlab && chmod +x /tmp/convlab
export CONVLAB_DATA=$PWD/gpu/data PYTHONUNBUFFERED=1
T0=$SECONDS
for net in base wide own fcn unet; do
  timeout 90 /tmp/convlab bench --network "$net" --device gpu --steps 10 --warmup 3 2>&1 | tail -1
done | tee "$OUT/bench-gpu.jsonl"
echo "steps done at $((SECONDS - T0)) s"
run=/tmp/runs/base-gpu
timeout 150 /tmp/convlab fashion train --model base --epochs 2 --device gpu --out $run 2>&1 \
  | tr '\r' '\n' | grep -E "^epoch|error|accuracy|run folder" | tee "$OUT/train-gpu.log"
timeout 120 /tmp/convlab fashion train --model base --epochs 3 --device gpu --resume --out $run 2>&1 \
  | tr '\r' '\n' | grep -E "^epoch|error|accuracy|run folder" | tee -a "$OUT/train-gpu.log"
timeout 60 /tmp/convlab fashion eval --run $run --engine cpu 2>&1 | grep -E "accuracy|error" \
  | tee -a "$OUT/train-gpu.log"
timeout 30 /tmp/convlab export --run $run --format onnx 2>&1 | tee -a "$OUT/train-gpu.log"
cp $run/metrics.jsonl "$OUT/train-gpu-metrics.jsonl" 2>/dev/null
ls $run | tee -a "$OUT/train-gpu.log"
echo "training done at $((SECONDS - T0)) s"
if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  timeout 200 python3 bench/compare.py --device gpu --measures steps --repeats 1 --steps 10 \
    --convlab /tmp/convlab --out "$OUT/compare-gpu.json" 2>&1 | tee "$OUT/compare-gpu.txt" | tail -16
else
  echo "no PyTorch with CUDA on this machine: compare.py skipped" | tee "$OUT/compare-gpu.txt"
fi
echo "total $((SECONDS - T0)) s"
