"""`ftm sandbox --provider together` as a user runs it: a foreground process the real
together SDK talks to, whose state survives a restart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import together

from tests.conftest import REPO_ROOT
from tests.sandbox.conftest import jsonl, sentiment_rows


def start_together(home: Path, *args: str) -> tuple[subprocess.Popen, str, str]:
    """Start the emulator; returns the process, the SDK's base URL and the banner."""
    env = {**os.environ, "FTM_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "sandbox", "--provider", "together", "--port", "0", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if "Press Ctrl-C" in line:
            banner = "".join(seen)
            match = re.search(r"TOGETHER_BASE_URL=(http://127\.0\.0\.1:\d+)", banner)
            assert match, banner
            return process, match.group(1), banner
    process.kill()
    raise AssertionError("ftm sandbox --provider together did not start:\n" + "".join(seen))


def stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    return output


def banner_key(banner: str) -> str:
    """The API key the banner tells the SDK to use (the only one the emulator accepts)."""
    match = re.search(r"TOGETHER_API_KEY=(\S+)", banner)
    assert match, banner
    return match.group(1)


def client_for(base_url: str, api_key: str) -> together.Together:
    sdk = together.Together(base_url=base_url, api_key=api_key, max_retries=0)
    deadline = time.monotonic() + 10
    while True:  # the banner is printed just before uvicorn accepts connections
        try:
            sdk.files.list()
            return sdk
        except together.APIConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_serve_train_and_restart(tmp_path):
    home = tmp_path / "home"
    process, base_url, banner = start_together(home, "--seconds-per-step", "0")
    try:
        assert "SIMULATED Together AI API" in banner
        assert "State: " in banner and "together" in banner
        # what points ftm's together provider at it (tests/together/ use the same settings)
        assert f"FTM_PROVIDERS__TOGETHER__SANDBOX_URL={base_url}" in banner
        sdk = client_for(base_url, banner_key(banner))
        train = tmp_path / "train.jsonl"
        train.write_bytes(jsonl(sentiment_rows()))
        file_id = sdk.files.upload(train).id
        job = sdk.fine_tuning.create(
            training_file=file_id,
            model="meta-llama/Llama-3.2-1B-Instruct",
            batch_size=8,
            train_on_inputs=False,
        )
        # Zero seconds per step: validation and queueing take 3 and 2 steps, so no time.
        deadline = time.monotonic() + 10
        while sdk.fine_tuning.retrieve(job.id).status != "completed":
            assert time.monotonic() < deadline, "the job did not complete"
            time.sleep(0.05)
    finally:
        output = stop(process)
    assert "state saved to" in output
    assert (home / "sandbox" / "together" / "state.json").exists()

    process, base_url, banner = start_together(home)
    try:
        assert "(1 jobs)" in banner
        sdk = client_for(base_url, banner_key(banner))
        again = sdk.fine_tuning.retrieve(job.id)
        assert again.status == "completed" and again.total_price > 0
        assert sdk.files.content(file_id).read() == jsonl(sentiment_rows())
    finally:
        stop(process)


def test_serve_fine_tunes_makes_a_finished_fine_tune_answer_from_its_examples(tmp_path):
    rows = sentiment_rows()
    process, base_url, banner = start_together(
        tmp_path, "--seconds-per-step", "0", "--ephemeral", "--serve-fine-tunes"
    )
    try:
        assert "as if on a dedicated endpoint" in banner
        sdk = client_for(base_url, banner_key(banner))
        train = tmp_path / "train.jsonl"
        train.write_bytes(jsonl(rows))
        job = sdk.fine_tuning.create(
            training_file=sdk.files.upload(train).id,
            model="meta-llama/Llama-3.2-1B-Instruct",
            batch_size=8,
            train_on_inputs=False,
        )
        deadline = time.monotonic() + 10
        while (done := sdk.fine_tuning.retrieve(job.id)).status != "completed":
            assert time.monotonic() < deadline, "the job did not complete"
            time.sleep(0.05)
        prompt, reply = (m["content"] for m in rows[1]["messages"][-2:])
        answer = sdk.chat.completions.create(
            model=done.model_output_name, messages=[{"role": "user", "content": prompt}]
        )
        assert answer.choices[0].message.content == reply
    finally:
        stop(process)


def test_openai_only_options_are_refused_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "app", "sandbox", "--provider", "together", "--sunset", "none"],
        cwd=REPO_ROOT,
        env={**os.environ, "FTM_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "--sunset" in result.stderr and "--provider together" in result.stderr
    assert "Traceback" not in result.stderr
