"""Token counts offline: the shipped encodings are built from the package's rank files,
never through tiktoken's download cache, so `ftm data check` counts the same whatever
TIKTOKEN_CACHE_DIR and TMPDIR say, and writes nothing anywhere."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import app.tokens
from app.datasets.check import check_file
from app.tokens import SHIPPED, build_encoding, get_encoding, load_ranks
from tests.conftest import REPO_ROOT
from tests.datasets.helpers import chat, write_jsonl

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database

ROWS = [
    {
        "messages": [
            {"role": "system", "content": "Réponds brièvement. 你好 🙂"},
            {"role": "user", "content": f"Question {i}: what is {i} * 17?\n\n```py\nx = {i}\n```"},
            {"role": "assistant", "content": f"It is {i * 17}. <|endoftext|> stays text."},
        ]
    }
    for i in range(12)
]


def _tiktoken_own_params(name: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    """What tiktoken_ext.openai_public builds for `name`, its ranks read by tiktoken's
    own loader from the shipped file (an empty TIKTOKEN_CACHE_DIR: no cache is touched)."""
    from tiktoken.load import load_tiktoken_bpe
    from tiktoken_ext import openai_public

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    asked = {}

    def local_loader(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        asked.update(url=url, expected_hash=expected_hash)
        return load_tiktoken_bpe(str(SHIPPED[name].rank_file), expected_hash)

    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", local_loader)
    params = openai_public.ENCODING_CONSTRUCTORS[name]()
    assert asked["url"].endswith(f"/{name}.tiktoken")
    params["expected_hash"] = asked["expected_hash"]
    return params


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_encodings_are_the_ones_tiktoken_defines(name, monkeypatch):
    theirs = _tiktoken_own_params(name, monkeypatch)
    spec = SHIPPED[name]
    assert spec.sha256 == theirs["expected_hash"]
    assert spec.pat_str == theirs["pat_str"]
    assert spec.special_tokens == theirs["special_tokens"]
    assert load_ranks(name) == theirs["mergeable_ranks"]
    sums = (app.tokens.ENCODINGS_DIR / "SHA256SUMS").read_text().split()
    assert sums[sums.index(f"{name}.tiktoken") - 1] == spec.sha256

    import tiktoken

    reference = tiktoken.Encoding(
        name,
        pat_str=theirs["pat_str"],
        mergeable_ranks=theirs["mergeable_ranks"],
        special_tokens=theirs["special_tokens"],
    )
    ours = build_encoding(name, keep_ranks=False)
    for row in ROWS[:3]:
        for message in row["messages"]:
            text = message["content"]
            assert ours.encode_ordinary(text) == reference.encode_ordinary(text)
            assert ours.encode(text, allowed_special="all") == reference.encode(
                text, allowed_special="all"
            )


def _read_only_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "marker").write_text("nothing else belongs here\n")
    path.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    return path


def _listing(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def _check(cwd: Path, env_changes: dict[str, str | None], *args: str) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR", "TMPDIR")
    }
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update({k: v for k, v in env_changes.items() if v is not None})
    out = subprocess.run(
        [sys.executable, "-m", "app", "data", "check", "data.jsonl", "--json", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    return json.loads(out.stdout)


def test_data_check_counts_identically_with_no_usable_cache_and_writes_nothing(tmp_path):
    """Run as a user runs it, from a read-only directory, with tiktoken's cache disabled,
    read-only, missing (under a read-only parent), and with a read-only TMPDIR."""
    work = tmp_path / "work"
    work.mkdir()
    write_jsonl(work / "data.jsonl", ROWS)
    _read_only_dir(work)
    read_only_cache = _read_only_dir(tmp_path / "cache-ro")
    read_only_tmp = _read_only_dir(tmp_path / "tmp-ro")
    locked = _read_only_dir(tmp_path / "locked")
    watched = {p: _listing(p) for p in (work, read_only_cache, read_only_tmp, locked)}
    variants = {
        "cache disabled": {"TIKTOKEN_CACHE_DIR": ""},
        "read-only cache": {"TIKTOKEN_CACHE_DIR": str(read_only_cache)},
        "missing cache": {"TIKTOKEN_CACHE_DIR": str(locked / "missing")},
        "read-only TMPDIR": {"TMPDIR": str(read_only_tmp)},
        "read-only TMPDIR, cache via DATA_GYM": {
            "TMPDIR": str(read_only_tmp),
            "DATA_GYM_CACHE_DIR": str(locked / "gym"),
        },
    }
    try:
        tokens = {name: _check(work, env)["tokens"] for name, env in variants.items()}
        cl100k = {
            name: _check(work, env, "--model", "gpt-3.5-turbo")["tokens"]
            for name, env in list(variants.items())[:2]
        }
        after = {p: _listing(p) for p in watched}
    finally:
        for p in watched:
            p.chmod(0o755)

    assert after == watched, "a check wrote into a directory it was only allowed to read"
    assert not (locked / "missing").exists() and not (locked / "gym").exists()
    encode = get_encoding("o200k_base").encode_ordinary
    expected = sum(
        3 + sum(3 + sum(len(encode(v)) for v in m.values()) for m in r["messages"]) for r in ROWS
    )
    assert {name: t["total"] for name, t in tokens.items()} == dict.fromkeys(variants, expected)
    assert all(t == tokens["cache disabled"] for t in tokens.values())
    assert tokens["cache disabled"]["tokenizer"] == "tiktoken:o200k_base"
    assert cl100k["cache disabled"] == cl100k["read-only cache"]
    assert cl100k["cache disabled"]["tokenizer"] == "tiktoken:cl100k_base"
    assert cl100k["cache disabled"]["total"] != expected


def test_a_worker_process_loads_the_offline_encoding_too(tmp_path, monkeypatch):
    """A spawned worker (the data check's path when the parent runs threads) builds its
    own counter: it must use the package's ranks as well."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from app.datasets.scan import scan_part

    path = write_jsonl(tmp_path / "data.jsonl", ROWS)
    read_only_tmp = _read_only_dir(tmp_path / "tmp-ro")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    monkeypatch.setenv("TMPDIR", str(read_only_tmp))
    monkeypatch.chdir(read_only_tmp)
    try:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            part = pool.submit(
                scan_part, str(path), 0, path.stat().st_size, 0, "cl100k_base"
            ).result()
        assert _listing(read_only_tmp) == ["marker"]
    finally:
        read_only_tmp.chmod(0o755)
    assert part.log.kept == []
    assert part.tokens.tolist() == check_file(path, model="gpt-4").arrays.tokens.tolist()


def test_unknown_model_is_one_file_level_problem(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [chat(i) for i in range(12)])
    report = check_file(path, model="llama-9000")
    assert report.counts_by_category == {"tokenizer_unavailable": 1}
    (problem,) = report.problems
    assert problem.line == 0 and "unknown model 'llama-9000'" in problem.message
    assert "give an OpenAI model id" in problem.message
    assert report.verdict == "errors" and report.token_stats is None


def test_a_broken_local_tokenizer_is_one_file_level_problem(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "tokenizer.json").write_text("{ not json")
    (model_dir / "tokenizer_config.json").write_text(
        '{"tokenizer_class": "PreTrainedTokenizerFast"}'
    )
    path = write_jsonl(tmp_path / "d.jsonl", [chat(i) for i in range(12)])
    report = check_file(path, model=str(model_dir))
    assert report.counts_by_category == {"tokenizer_unavailable": 1}
    assert f"cannot load a tokenizer from {model_dir}" in report.problems[0].message
    assert "give a model directory with tokenizer files" in report.problems[0].message


def test_damaged_shipped_ranks_are_one_file_level_problem(tmp_path, monkeypatch):
    damaged = tmp_path / "encodings"
    damaged.mkdir()
    original = (app.tokens.ENCODINGS_DIR / "o200k_base.tiktoken").read_bytes()
    (damaged / "o200k_base.tiktoken").write_bytes(original[: len(original) // 2])
    monkeypatch.setattr(app.tokens, "ENCODINGS_DIR", damaged)
    get_encoding.cache_clear()
    try:
        path = write_jsonl(tmp_path / "d.jsonl", [chat(i) for i in range(30)])
        report = check_file(path)
    finally:
        get_encoding.cache_clear()
    assert report.counts_by_category == {"tokenizer_unavailable": 1}
    message = report.problems[0].message
    assert "o200k_base" in message and "damaged" in message and "reinstall ftm" in message


def test_unknown_model_through_the_cli_is_one_problem_without_traceback(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [chat(i) for i in range(12)])
    out = subprocess.run(
        [sys.executable, "-m", "app", "data", "check", str(path), "--model", "llama-9000"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "tokenizer_unavailable" in out.stdout and "unknown model 'llama-9000'" in out.stdout
    assert out.stdout.count("tokenizer_unavailable") <= 2  # category table and problem list


def test_a_large_file_checked_by_worker_processes_counts_the_same_offline(tmp_path):
    """Past PARALLEL_MIN_BYTES the CLI scans in worker processes: from a read-only
    directory, tiktoken's cache disabled and a read-only TMPDIR, they count as one
    process does and write nothing."""
    import random

    from app.datasets.check import PARALLEL_MIN_BYTES

    words = [
        f"{w}{n}" for w in ("alpha", "béta", "γάμμα", "数据", "delta", "echo") for n in range(400)
    ]
    rng = random.Random(7)
    work = tmp_path / "work"
    work.mkdir()
    path = work / "data.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        while f.tell() < PARALLEL_MIN_BYTES + (1 << 20):
            example = {
                "messages": [
                    {"role": "system", "content": "Answer."},
                    {"role": "user", "content": " ".join(rng.choices(words, k=60))},
                    {"role": "assistant", "content": " ".join(rng.choices(words, k=20))},
                ]
            }
            f.write(json.dumps(example, ensure_ascii=False) + "\n")
    inline = check_file(path, workers=0).token_stats
    _read_only_dir(work)
    read_only_tmp = _read_only_dir(tmp_path / "tmp-ro")
    before = _listing(work), _listing(read_only_tmp)
    try:
        tokens = _check(work, {"TIKTOKEN_CACHE_DIR": "", "TMPDIR": str(read_only_tmp)})["tokens"]
        after = _listing(work), _listing(read_only_tmp)
    finally:
        work.chmod(0o755)
        read_only_tmp.chmod(0o755)
    assert after == before
    assert tokens["n"] == inline.n and tokens["total"] == inline.total
    assert (tokens["min"], tokens["max"]) == (inline.min, inline.max)
