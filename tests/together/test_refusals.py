"""What a user sees when Together refuses: `ftm launch --provider together` run as a user
runs it (a subprocess) against the emulator, which checks the key it was started with,
refuses models outside its catalog and validates files server-side.

Each refusal is one line naming Together AI and what to do, never a traceback; the job
table tells the truth; a key never reaches the output or the database.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlmodel import select

from app import database
from app.sandbox.together.server import TogetherSandboxServer
from db.engine import read_session
from db.models import Job
from tests.conftest import REPO_ROOT
from tests.jobs.conftest import make_dataset
from tests.together.conftest import SMALL

WRONG_KEY = "tgp_v1_wrong-key-that-must-never-be-shown-0123456789"


def ftm(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def launch(dataset: str, model: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    args = ["launch", "--provider", "together", "--dataset", dataset, "--model", model]
    return ftm(*args, "--epochs", "1", "--batch-size", "8", "-y", env=env)


def sandbox_env(server: TogetherSandboxServer) -> dict[str, str]:
    return {
        "FTM_PROVIDERS__TOGETHER__SANDBOX": "true",
        "FTM_PROVIDERS__TOGETHER__SANDBOX_URL": server.base_url,
    }


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Together AI" in lines[0]
    return lines[0]


def jobs() -> list[Job]:
    with read_session(database.get_engine()) as session:
        return list(session.exec(select(Job)).all())


def database_bytes() -> bytes:
    home = Path(os.environ["FTM_HOME"])
    return b"".join(path.read_bytes() for path in home.rglob("*") if path.is_file())


def test_a_wrong_key_is_one_line_naming_the_variable_and_never_shown(server, tmp_path):
    make_dataset(database.get_engine(), tmp_path, n_train=12)
    # Not sandbox mode: the provider sends the key from TOGETHER_API_KEY, as against the
    # real service, to an API that knows only its own key.
    env = {"FTM_PROVIDERS__TOGETHER__BASE_URL": server.base_url, "TOGETHER_API_KEY": WRONG_KEY}
    result = launch("toy", SMALL, env)
    line = one_error_line(result)
    assert "invalid_api_key" in line and "TOGETHER_API_KEY" in line
    assert WRONG_KEY not in result.stdout + result.stderr
    assert WRONG_KEY.encode() not in database_bytes()  # nor anywhere under FTM_HOME
    assert jobs() == [] and not server.state.jobs and not server.state.files


def test_a_model_outside_the_catalog_is_refused_before_anything_is_created(server, tmp_path):
    make_dataset(database.get_engine(), tmp_path, n_train=12)
    line = one_error_line(launch("toy", "nobody/nothing", sandbox_env(server)))
    assert "nobody/nothing" in line and "Fine-tunable models:" in line
    assert jobs() == [] and not server.state.jobs and not server.state.files


def test_a_file_failing_server_side_validation_ends_the_job_failed_with_the_reason(
    tmp_path,
):
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
        for i in range(12)
    ]
    rows[3] = {"messages": [{"role": "user", "content": "a turn with no reply"}]}
    make_dataset(database.get_engine(), tmp_path, name="bad", lines=rows)
    # Zero seconds per step: the emulator's data check runs as soon as the job is read.
    with TogetherSandboxServer(seconds_per_step=0.0) as server:
        env = sandbox_env(server)
        launched = launch("bad", SMALL, env)
        assert launched.returncode == 0, launched.stderr  # accepted; checked server-side
        polled = ftm("watch", "--once", env=env)
        assert "Traceback" not in polled.stdout + polled.stderr, polled.stderr
        shown = ftm("jobs", "show", "1", env=env)
        (remote_id,) = server.state.jobs
        assert server.state.settled_job(remote_id).status == "error"
    (job,) = jobs()
    assert job.status == "failed", shown.stdout
    assert "Line 4" in str(job.error)
    assert "failed" in shown.stdout and "Line 4" in shown.stdout
