#!/bin/bash
# One prepared device check for a lent GPU machine (about 10 minutes): wgpu sanity, the
# side-by-side step benchmark (convlab on wgpu vs PyTorch on CUDA), then a time-boxed fcn
# training run on the GPU. Results land in $OUT.
# Needs, beside the checkout (ignored folders named in the device tool's `carry`):
#   gpu/convlab.xz   `cargo build --release --features wgpu`, stripped, xz-compressed (~19 MB)
#   gpu/data/mini_facade/   a copy of the data set (34 MB)
#   .gl/*.deb        Vulkan/EGL loader packages (see the device tool's README)
# Run from the repository root: bash bench/device_check.sh
set -u
cd "$(dirname "$0")/.."
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$ICD" ] && export VK_DRIVER_FILES=$ICD
EGL=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -f "$EGL" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$EGL
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
xz -dc gpu/convlab.xz > /tmp/convlab && chmod +x /tmp/convlab
export CONVLAB_DATA=$PWD/gpu/data PYTHONUNBUFFERED=1
T0=$SECONDS
timeout 60 /tmp/convlab bench --network base --device gpu --steps 3 --warmup 1 2>&1 | tail -3 | tee "$OUT/smoke.txt"
timeout 240 python3 bench/compare.py --device gpu --measures steps --repeats 1 --steps 10 \
  --convlab /tmp/convlab --out "$OUT/bench-gpu.json" 2>&1 | tee "$OUT/bench-gpu.txt" | tail -16
echo "bench done at $((SECONDS - T0)) s"
LEFT=$(( 470 - (SECONDS - T0) ))
echo "fcn training for at most $LEFT s"
timeout $LEFT /tmp/convlab facade train --model fcn --device gpu --out /tmp/fcn-gpu 2>&1 | tr '\r' '\n' | grep -E "^epoch|error" | tee "$OUT/fcn-gpu.log"
timeout 60 /tmp/convlab facade eval --run /tmp/fcn-gpu --device gpu 2>&1 | tail -9 | tee -a "$OUT/fcn-gpu.log"
cp /tmp/fcn-gpu/metrics.json "$OUT/fcn-gpu-metrics.json" 2>/dev/null
cp /tmp/fcn-gpu/metrics.jsonl "$OUT/fcn-gpu-metrics.jsonl" 2>/dev/null
echo "total $((SECONDS - T0)) s"
