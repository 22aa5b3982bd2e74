"""`ftm sandbox` as a user runs it: a foreground process the real SDK talks to, whose
state survives a restart."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

from tests.conftest import REPO_ROOT
from tests.sandbox.conftest import jsonl, sentiment_rows


def start_sandbox(home: Path, *args: str, **env_vars: str) -> tuple[subprocess.Popen, str, str]:
    """Start `ftm sandbox`; returns the process, its base URL and its banner."""
    env = {**os.environ, "FTM_HOME": str(home), "PYTHONUNBUFFERED": "1", **env_vars}
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "sandbox", "--port", "0", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    seen = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        match = re.search(r"SIMULATED OpenAI API at (http://127\.0\.0\.1:\d+/v1)", line)
        if match:
            # Read on until the banner is complete, so the server is about to serve.
            while "Press Ctrl-C" not in line:
                line = process.stdout.readline()
                seen.append(line)
            return process, match.group(1), "".join(seen)
    process.kill()
    raise AssertionError("ftm sandbox did not start:\n" + "".join(seen))


def stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    return output


def wait_until_ready(client: openai.OpenAI) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            client.models.list()
            return
        except openai.APIConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_sandbox_serves_the_sdk_and_keeps_its_state_across_a_restart(tmp_path):
    home = tmp_path / "home"
    process, url, _ = start_sandbox(home, "--seconds-per-step", "0.002", "--seed", "3")
    try:
        client = openai.OpenAI(base_url=url, api_key="sk-anything", max_retries=0)
        wait_until_ready(client)
        train = client.files.create(
            file=("train.jsonl", jsonl(sentiment_rows())), purpose="fine-tune"
        )
        job = client.fine_tuning.jobs.create(
            model="gpt-4o-mini",
            training_file=train.id,
            hyperparameters={"n_epochs": 1, "batch_size": 4},
        )
        deadline = time.monotonic() + 20
        while job.status != "succeeded" and time.monotonic() < deadline:
            time.sleep(0.02)
            job = client.fine_tuning.jobs.retrieve(job.id)
        assert job.status == "succeeded"
    finally:
        stop(process)
    saved = json.loads((home / "sandbox" / "state.json").read_text())
    assert [j["id"] for j in saved["jobs"]] == [job.id]

    faults = tmp_path / "faults.json"
    faults.write_text(
        json.dumps({"rules": [{"route": "models.retrieve", "kind": "server_error", "count": 1}]})
    )
    process, url, _ = start_sandbox(home, "--faults", str(faults))
    try:
        client = openai.OpenAI(base_url=url, api_key="sk-anything", max_retries=0)
        wait_until_ready(client)
        with pytest.raises(openai.InternalServerError):
            client.models.retrieve(job.fine_tuned_model)  # the fault plan from the file
        assert client.models.retrieve(job.fine_tuned_model).id == job.fine_tuned_model
        again = client.fine_tuning.jobs.retrieve(job.id)
        assert (again.status, again.fine_tuned_model) == ("succeeded", job.fine_tuned_model)
        assert client.files.content(train.id).content == jsonl(sentiment_rows())
        answer = client.chat.completions.create(
            model=job.fine_tuned_model,
            messages=[{"role": "user", "content": "Rude receptionist and a dirty lobby"}],
        )
        assert answer.choices[0].message.content == "negative"
    finally:
        stop(process)


def test_ephemeral_sandbox_with_faults_and_the_sunset(tmp_path):
    inline = json.dumps({"rules": [{"route": "files.list", "kind": "unavailable", "count": 1}]})
    process, url, banner = start_sandbox(
        tmp_path / "home", "--ephemeral", "--date", "2027-02-01", FTM_SANDBOX_FAULTS=inline
    )
    try:
        client = openai.OpenAI(base_url=url, api_key="sk-x", max_retries=0)
        wait_until_ready(client)
        with pytest.raises(openai.InternalServerError):
            client.files.list()
        train = client.files.create(file=("t.jsonl", jsonl(sentiment_rows())), purpose="fine-tune")
        with pytest.raises(openai.PermissionDeniedError, match="after 2027-01-06"):
            client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=train.id)
    finally:
        stop(process)
    assert "Clock: 2027-02-01" in banner and "not kept" in banner and "Faults: 1 rule(s)" in banner
    assert not (tmp_path / "home" / "sandbox").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--faults", "{missing}"], "cannot read fault plan"),
        (["--faults", '{"rules": [{"route": "jobs.create"'], "inline fault plan is not valid JSON"),
        (["--faults", '{"rules": [{"route": "*", "kind": "boom"}]}'], "unknown fault kind 'boom'"),
        (["--date", "tomorrow"], "--date 'tomorrow' is not a date"),
        (["--sunset", "2027-13-01"], "--sunset '2027-13-01' is not a date"),
        (["--seconds-per-step", "-1"], "must not be negative"),
    ],
)
def test_bad_options_get_a_clear_error_without_a_traceback(tmp_path, args, message):
    args = [a.replace("{missing}", str(tmp_path / "nope.json")) for a in args]
    result = subprocess.run(
        [sys.executable, "-m", "app", "sandbox", "--port", "0", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "FTM_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.stderr
