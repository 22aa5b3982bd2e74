#!/usr/bin/env bash
# Step 2 of the GPU bench, run ON the lent GPU machine from the repository root, with .whl/
# carried (step 1, bench/gpu_wheels.sh, made it here). Installs the wheels into /tmp/site,
# records the GPU and the library versions, and runs bench/gpu_qlora_8b.py (QLoRA and LoRA
# on an 8B-shaped Llama, Liger off and on), writing everything to $OUT (bench/out/ when
# $OUT is unset). Extra arguments go to the bench (e.g. --steps 8 --liger off).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
if ! ls .whl/*.whl >/dev/null 2>&1; then
  echo "no wheels in .whl/: run bash bench/gpu_wheels.sh on the machine that has PyPI first"
  exit 1
fi
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || { echo "installing the carried wheels failed"; exit 1; }
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,compute_cap,memory.total,memory.used,driver_version,clocks.max.sm \
  --format=csv >"$OUT/nvidia-smi.csv" 2>&1
"$PY" - >"$OUT/versions.txt" 2>&1 <<'PY'
import importlib

for name in ("torch", "triton", "transformers", "trl", "peft", "accelerate", "datasets",
             "bitsandbytes", "liger_kernel", "pydantic"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "?"), module.__file__)
    except Exception as exc:  # noqa: BLE001 - record every import problem, keep going
        print(name, "IMPORT FAILED:", type(exc).__name__, exc)
PY
cat "$OUT/nvidia-smi.csv" "$OUT/versions.txt"
timeout "${BENCH_TIMEOUT:-500}" "$PY" bench/gpu_qlora_8b.py --workdir /tmp \
  --json "$OUT/bench.json" "$@" 2>&1 | tee "$OUT/bench.log"
exit "${PIPESTATUS[0]}"
