"""`ftm sandbox --provider all`: the OpenAI and Together emulators from one command on two
ports, each reached over real HTTP by its own SDK, both stopped by one Ctrl-C with their
state saved as each saves it alone."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import openai
import together

from tests.conftest import REPO_ROOT
from tests.sandbox.conftest import jsonl, sentiment_rows


def start_all(home: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "FTM_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    args = ["sandbox", "--provider", "all", "--port", "0", "--together-port", "0"]
    process = subprocess.Popen(
        [sys.executable, "-m", "app", *args, "--seconds-per-step", "0"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if "Press Ctrl-C" in line:
            return process, "".join(seen)
    process.kill()
    raise AssertionError("ftm sandbox --provider all did not start:\n" + "".join(seen))


def banner_value(banner: str, pattern: str) -> str:
    match = re.search(pattern, banner)
    assert match, banner
    return match.group(1)


def until_up(call, deadline_s: float = 10.0):
    """The banner is printed just before the servers accept connections."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return call()
        except (openai.APIConnectionError, together.APIConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def refused(url: str) -> bool:
    host, port = url.split("//")[1].split("/")[0].split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return True
    return False


def test_both_emulators_from_one_command_one_ctrl_c_stops_both(tmp_path):
    home = tmp_path / "home"
    process, banner = start_all(home)
    try:
        openai_url = banner_value(banner, r"FTM_OPENAI__SANDBOX_URL=(\S+)")
        together_url = banner_value(banner, r"TOGETHER_BASE_URL=(\S+)")
        together_key = banner_value(banner, r"TOGETHER_API_KEY=(\S+)")
        assert f"FTM_PROVIDERS__TOGETHER__SANDBOX_URL={together_url}" in banner
        assert openai_url.split("/v1")[0] != together_url  # two ports
        train = tmp_path / "train.jsonl"
        train.write_bytes(jsonl(sentiment_rows()))

        oa = openai.OpenAI(base_url=openai_url, api_key="sk-sandbox", max_retries=0)
        oa_file = until_up(lambda: oa.files.create(file=train.open("rb"), purpose="fine-tune"))
        tg = together.Together(base_url=together_url, api_key=together_key, max_retries=0)
        tg_file = until_up(lambda: tg.files.upload(train))
        # within the state file's one-second debounce: saved only by the shutdown
        tg_second = tg.files.upload(train)
        tg_ids = [tg_file.id, tg_second.id]
        # each answers its own API only
        assert [f.id for f in tg.files.list().data] == tg_ids
        assert [f.id for f in oa.files.list().data] == [oa_file.id]
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "Traceback" not in output
    assert refused(openai_url) and refused(together_url)
    openai_state = json.loads((home / "sandbox" / "state.json").read_text())
    together_state = json.loads((home / "sandbox" / "together" / "state.json").read_text())
    assert [f["id"] for f in openai_state["files"]] == [oa_file.id]
    assert [f["id"] for f in together_state["files"]] == tg_ids
    assert "Together AI emulator stopped; state saved to" in output


def test_the_two_ports_must_differ(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "app", "sandbox", "--provider", "all", "--port", "8799"]
        + ["--together-port", "8799"],
        cwd=REPO_ROOT,
        env={**os.environ, "FTM_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "two ports" in result.stderr and "Traceback" not in result.stderr


def test_a_busy_together_port_names_the_option_to_change(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "app", "sandbox", "--provider", "all", "--port", "0"]
            + ["--together-port", str(taken), "--ephemeral"],
            cwd=REPO_ROOT,
            env={**os.environ, "FTM_HOME": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"cannot listen on 127.0.0.1:{taken}" in result.stderr
    assert "pass another --together-port" in result.stderr
