#!/usr/bin/env bash
# Step 1 of the GPU bench on a lent GPU machine (bench/gpu_device.sh is step 2): download,
# here, the wheels that machine lacks into .whl/ (ignored by git; the device tool carries
# it). That machine (Python 3.12, x86-64, torch 2.11 + CUDA 13.0, accelerate, tokenizers,
# huggingface_hub, pyarrow) has no network and no trl, datasets, bitsandbytes or
# liger-kernel; transformers and peft are pinned here to the versions ftm's tests ran on.
#
# The carried files (this tree included) must stay under 64 MiB: bitsandbytes' wheel
# (41 MiB) holds a library for every CUDA release, so only the CPU and CUDA 13.x ones are
# kept (7 MiB; set BNB_KEEP to keep others, as a regular expression on the CUDA version).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
BNB_KEEP=${BNB_KEEP:-13[0-9]}
WHEELS=(
  transformers==5.24.0 peft==0.21.2 trl==1.16.0 datasets==5.2.0 dill==0.4.1
  multiprocess==0.70.19 bitsandbytes==0.50.2 liger-kernel==0.8.5 regex==2026.11.19
  pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  typing_extensions==4.16.0
)
rm -rf .whl && mkdir .whl
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 \
  manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp "${platforms[@]}" -d .whl "${WHEELS[@]}"
# bitsandbytes without the CUDA libraries the device's torch does not load. pip installs
# a wheel from its files (RECORD is rewritten), so dropping some is safe.
"$PY" - "$BNB_KEEP" <<'PY'
import glob, os, re, sys, zipfile

keep = re.compile(r"libbitsandbytes_(cpu|cuda(" + sys.argv[1] + r"))\.")
(src,) = glob.glob(".whl/bitsandbytes-*.whl")
tmp = src + ".tmp"
with zipfile.ZipFile(src) as zi, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zo:
    for info in zi.infolist():
        name = os.path.basename(info.filename)
        if name.startswith("libbitsandbytes_") and not keep.match(name):
            continue
        zo.writestr(info, zi.read(info.filename))
os.replace(tmp, src)
PY
wheels=$(du -cb .whl/*.whl | tail -1 | cut -f1)
tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
limit=$((64 * 1024 * 1024))
echo "wheels $((wheels / 1048576)) MiB + tree $((tree / 1048576)) MiB of the 64 MiB carried"
if [ $((wheels + tree)) -ge $limit ]; then
  echo "too large to carry: drop a wheel the machine already has" >&2
  exit 1
fi
