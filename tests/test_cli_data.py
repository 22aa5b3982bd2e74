"""`ftm data ...` through the real entry point (a subprocess), as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO_ROOT
from tests.datasets.helpers import chat, write_jsonl


def ftm(*args: str, env_home=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_prints_tables_and_exits_0_on_a_good_file(tmp_path):
    path = write_jsonl(tmp_path / "good.jsonl", [chat(i) for i in range(12)])
    out = ftm("data", "check", str(path))
    assert out.returncode == 0, out.stderr
    assert "verdict" in out.stdout and "ok" in out.stdout
    assert "Tokens per example (tiktoken:o200k_base)" in out.stdout
    assert "Traceback" not in out.stderr


def test_check_json_and_exit_1_on_errors(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [chat(i) for i in range(12)], raw_lines={2: b"{"})
    out = ftm("data", "check", str(path), "--json", "--model", "gpt-3.5-turbo")
    assert out.returncode == 1
    report = json.loads(out.stdout)
    assert report["verdict"] == "errors" and report["model"] == "gpt-3.5-turbo"
    assert report["counts_by_category"] == {"invalid_json": 1}
    assert report["problems"][0]["line"] == 2
    assert report["tokens"]["tokenizer"] == "tiktoken:cl100k_base"


def test_check_on_missing_path_and_directory_reports_without_traceback(tmp_path):
    for target, category in ((tmp_path / "nope.jsonl", "missing_file"), (tmp_path, "not_a_file")):
        out = ftm("data", "check", str(target), "--json")
        assert out.returncode == 1 and "Traceback" not in out.stderr
        assert json.loads(out.stdout)["counts_by_category"] == {category: 1}


def test_unknown_model_is_one_file_level_problem(tmp_path):
    path = write_jsonl(tmp_path / "good.jsonl", [chat(i) for i in range(12)])
    out = ftm("data", "check", str(path), "--model", "llama-9000", "--json")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    report = json.loads(out.stdout)
    assert report["counts_by_category"] == {"tokenizer_unavailable": 1}
    assert report["problems"][0]["line"] == 0
    assert report["problems"][0]["message"].startswith(
        "unknown model 'llama-9000': give an OpenAI model id"
    )


def test_add_then_add_again_then_list_and_show(tmp_path):
    path = write_jsonl(tmp_path / "tickets.jsonl", [chat(i) for i in range(20)])
    first = ftm(
        "data", "add", str(path), "--name", "tickets", "--val-fraction", "0.2", "--seed", "4"
    )
    assert first.returncode == 0, first.stderr
    assert "added dataset 'tickets'" in first.stdout and "16 train / 4 validation" in first.stdout
    again = ftm("data", "add", str(path), "--json")
    record = json.loads(again.stdout)
    assert record["created"] is False and record["name"] == "tickets"
    listing = json.loads(ftm("data", "list", "--json").stdout)
    assert [d["name"] for d in listing] == ["tickets"]
    shown = ftm("data", "show", "tickets")
    assert shown.returncode == 0 and "Tokens per example" in shown.stdout
    missing = ftm("data", "show", "nope")
    assert missing.returncode == 1 and "known datasets: tickets" in missing.stderr


def test_add_refuses_a_file_with_errors(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [chat(i) for i in range(12)], raw_lines={7: b"[]"})
    out = ftm("data", "add", str(path))
    assert out.returncode == 1
    assert "not added" in out.stderr and "line 7: data_type" in out.stderr
    assert "Traceback" not in out.stderr


def test_add_dedupe_writes_the_cleaned_file_beside(tmp_path):
    rows = [chat(i) for i in range(12)] + [chat(1), chat(2)]
    path = write_jsonl(tmp_path / "dups.jsonl", rows)
    before = path.read_bytes()
    out = ftm("data", "add", str(path), "--dedupe", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["n_examples"] == 12
    assert (tmp_path / "dups.dedup.jsonl").exists() and path.read_bytes() == before


def test_check_warns_on_examples_without_a_system_or_user_message(tmp_path):
    rows = [chat(i) for i in range(12)]
    rows[2] = {
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    }
    rows[6] = {
        "messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "b"}]
    }
    path = write_jsonl(tmp_path / "turns.jsonl", rows)
    out = ftm("data", "check", str(path), "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["verdict"] == "warnings"
    assert report["counts_by_category"] == {"missing_system_message": 1, "missing_user_message": 1}
    assert [(p["line"], p["category"]) for p in report["problems"]] == [
        (3, "missing_system_message"),
        (7, "missing_user_message"),
    ]
    table = ftm("data", "check", str(path))
    assert "missing_system_message" in table.stdout and "missing_user_message" in table.stdout
