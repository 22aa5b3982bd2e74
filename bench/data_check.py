"""Benchmark `ftm data check`: speed against the public recipe, and memory on a big file.

    .venv/bin/python bench/data_check.py                 # both parts, full size
    .venv/bin/python bench/data_check.py --examples 20000 --size-mb 128   # quicker

(a) Speed: N generated chat examples (default 100,000). The baseline is the public
    data-prep recipe written plainly: json.loads each line, check the format, then encode
    every value with tiktoken, one example at a time, one thread. Both run as fresh
    processes (interpreter start and tokenizer load included) on the same file; the ratio
    is baseline time / ftm time.
(b) Memory: a generated file of --size-mb MB (default 1024) is checked by `ftm data check`
    in a subprocess; the resident memory of that process AND all its worker processes is
    sampled every 20 ms and the peak of the sum is printed (pages shared between them are
    counted once per process, so the figure is an upper bound).

The generated examples share one of three long system prompts (about 350-500 tokens), as
production fine-tuning sets usually do, with unique user and assistant turns (about 30-120
and 60-250 tokens) drawn from a fixed vocabulary.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
FTM = [sys.executable, "-m", "app"]

WORDS = (
    "the of and to in is that it for on with as was at by be this are from or have an not "
    "they which one you had but all their were can there has been if more when will would "
    "who so no time about into than them could only other new some these two may first then "
    "do any like my now over such our man me even most made after also did many before must "
    "well years back through much where your way down should because each just those people "
    "how too little state good very make world still own see men work long get here between "
    "both life being under never day same another know while last might us great old year "
    "off come since against go came right used take three order refund account invoice "
    "shipping delivery password reset customer support product warranty return policy "
    "subscription billing payment card address email phone tracking number package "
    "damaged missing late early discount coupon price plan upgrade downgrade cancel renew"
).split()


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(8, 18))).capitalize() + "."


def generate(
    path: Path, *, n_examples: int | None = None, size_bytes: int | None = None, seed: int = 0
) -> int:
    """Write chat examples until n_examples or size_bytes; returns the example count."""
    rng = random.Random(seed)
    # Production fine-tuning sets usually repeat one long system prompt (policies, tone,
    # formats) on every line: here one of three, of about 350 to 500 tokens.
    systems = [
        "You are Acme Corp's customer support assistant. "
        + " ".join(_sentence(rng) for _ in range(k))
        for k in (24, 30, 36)
    ]
    pool = [_sentence(rng) for _ in range(50_000)]
    written = n = 0
    with open(path, "wb") as f:
        while (n_examples is None or n < n_examples) and (
            size_bytes is None or written < size_bytes
        ):
            example = {
                "messages": [
                    {"role": "system", "content": systems[n % len(systems)]},
                    {"role": "user", "content": " ".join(rng.choices(pool, k=rng.randint(1, 3)))},
                    {
                        "role": "assistant",
                        "content": " ".join(rng.choices(pool, k=rng.randint(2, 6))),
                    },
                ]
            }
            line = orjson.dumps(example) + b"\n"
            f.write(line)
            written += len(line)
            n += 1
    return n


BASELINE = r"""
import json, sys
from app.tokens import encoding_for_model
enc = encoding_for_model("gpt-4o-mini-2024-07-18")
errors, counts = 0, []
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        ex = json.loads(line)
        messages = ex.get("messages")
        if not messages:
            errors += 1
            continue
        for m in messages:
            if "role" not in m or "content" not in m:
                errors += 1
            if m.get("role") not in ("system", "user", "assistant", "function"):
                errors += 1
        n = 0
        for m in messages:
            n += 3
            for key, value in m.items():
                n += len(enc.encode(value))
                if key == "name":
                    n += 1
        counts.append(n + 3)
print(len(counts), sum(counts), errors)
"""


def _cpu_of_children() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (the process and the workers it waited for), stdout."""
    cpu_before = _cpu_of_children()
    started = time.perf_counter()
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if out.returncode not in (0, 1):
        sys.exit(f"{cmd} failed:\n{out.stderr[-2000:]}")
    return elapsed, _cpu_of_children() - cpu_before, out.stdout


def bench_speed(n_examples: int, workdir: Path) -> float:
    path = workdir / "speed.jsonl"
    generate(path, n_examples=n_examples)
    size_mb = path.stat().st_size / 1e6
    print(f"(a) speed: {n_examples:,} chat examples, {size_mb:.1f} MB, {os.cpu_count()} CPU(s)")
    load = os.getloadavg()[0]
    base_s, base_cpu, base_out = _timed([sys.executable, "-c", BASELINE, str(path)])
    n_base, tokens_base, _ = (int(x) for x in base_out.split())
    ftm_s, ftm_cpu, ftm_out = _timed(FTM + ["data", "check", str(path), "--json"])
    report = orjson.loads(ftm_out)
    tokens_ftm = report["tokens"]["total"]
    print(f"    load average before: {load:.1f} (other processes compete for the CPUs)")
    print(
        f"    baseline (json.loads + tiktoken per value, 1 thread): {base_s:6.2f} s wall, "
        f"{base_cpu:6.2f} s CPU ({n_base:,} examples, {tokens_base:,} tokens)"
    )
    print(
        f"    ftm data check (validation, tokens, duplicates, split): {ftm_s:6.2f} s wall, "
        f"{ftm_cpu:6.2f} s CPU ({report['n_valid']:,} examples, {tokens_ftm:,} tokens, "
        f"verdict {report['verdict']})"
    )
    if tokens_base != tokens_ftm:
        sys.exit(f"token totals differ: baseline {tokens_base} vs ftm {tokens_ftm}")
    ratio = base_s / ftm_s
    print(
        f"    speed-up: {ratio:.2f}x wall (target >= 3x), {base_cpu / ftm_cpu:.2f}x CPU time; "
        "token totals identical"
    )
    return ratio


def _tree_rss(proc) -> tuple[int, int]:
    import psutil

    total = main = 0
    try:
        main = proc.memory_info().rss
        total = main + sum(c.memory_info().rss for c in proc.children(recursive=True))
    except psutil.Error:
        pass
    return total, main


def bench_memory(size_mb: int, workdir: Path) -> int:
    import psutil

    path = workdir / "big.jsonl"
    n = generate(path, size_bytes=size_mb * 1_000_000, seed=1)
    print(f"(b) memory: {path.stat().st_size / 1e6:,.0f} MB file, {n:,} examples")
    started = time.perf_counter()
    child = subprocess.Popen(
        FTM + ["data", "check", str(path), "--json"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    proc = psutil.Process(child.pid)
    peak_total = peak_main = 0
    while child.poll() is None:
        total, main = _tree_rss(proc)
        peak_total, peak_main = max(peak_total, total), max(peak_main, main)
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    if child.returncode not in (0, 1):
        sys.exit(f"ftm data check failed:\n{child.stderr.read().decode()[-2000:]}")
    print(f"    checked in {elapsed:.1f} s ({path.stat().st_size / 1e6 / elapsed:.0f} MB/s)")
    print(
        f"    peak RSS, ftm process + workers: {peak_total / 1e6:.0f} MB "
        f"(main process alone {peak_main / 1e6:.0f} MB; target < 300 MB)"
    )
    return peak_total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100_000, help="examples for the speed part")
    parser.add_argument("--size-mb", type=int, default=1024, help="file size for the memory part")
    parser.add_argument("--only", choices=("speed", "memory"), help="run one part")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ftm-bench-") as tmp:
        env_home = Path(tmp) / "home"
        os.environ["FTM_HOME"] = str(env_home)
        ok = True
        if args.only in (None, "speed"):
            ok &= bench_speed(args.examples, Path(tmp)) >= 3.0
        if args.only in (None, "memory"):
            ok &= bench_memory(args.size_mb, Path(tmp)) < 300e6
        print("PASS" if ok else "FAIL: a target was missed")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
