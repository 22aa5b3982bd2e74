"""A provider and a scorer shipped by a real third-party distribution: a package with
``ftm.providers`` and ``ftm.scorers`` entry points in its pyproject, built and installed
by pip into a directory of its own, then put on PYTHONPATH of ``ftm`` run as a separate
process. ftm discovers both through importlib.metadata, launches and polls a job on the
provider, and evaluates its model with the scorer. Nothing here patches entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlmodel import select

from app import database
from db.engine import read_session
from db.models import EvalRun, Job
from tests.conftest import REPO_ROOT
from tests.tiny import labelling_files

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "ftm-echo-plugin"
version = "0.1.0"

[project.entry-points."ftm.providers"]
echo = "ftm_echo_plugin:EchoProvider"

[project.entry-points."ftm.scorers"]
quarter = "ftm_echo_plugin:quarter"

[tool.setuptools]
packages = ["ftm_echo_plugin"]
"""

# Its jobs live in a JSON file under FTM_HOME: each ftm command is a process of its own.
PLUGIN = textwrap.dedent('''
    """A third-party provider that 'trains' by counting lines, and a scorer."""
    import json
    import os
    from datetime import datetime, timezone
    from pathlib import Path

    from providers.base import Capabilities, Provider
    from providers.types import (BaseModelInfo, Completion, JobEvent, JobStatus, MetricPoint,
                                 Refresh, RemoteJob)

    def _state_path():
        return Path(os.environ["FTM_HOME"]) / "echo-plugin-jobs.json"

    def _jobs():
        path = _state_path()
        return json.loads(path.read_text()) if path.exists() else {}

    def _save(jobs):
        _state_path().write_text(json.dumps(jobs))


    class EchoProvider(Provider):
        name = "echo"
        display_name = "Echo plugin"
        capabilities = Capabilities(methods=("supervised",))

        def prepare(self, spec):
            lines = Path(spec.train_path).read_text().splitlines()
            return type(spec)(**{**spec.__dict__, "options": {"lines": len(lines)}})

        def create(self, spec):
            remote_id = "echo-" + spec.ftm_job_uid[:8]
            jobs = _jobs()
            jobs[remote_id] = {"lines": spec.options["lines"], "polls": 0}
            _save(jobs)
            return RemoteJob(remote_id=remote_id, status=JobStatus.QUEUED)

        def refresh(self, remote_id, events_cursor=None):
            jobs = _jobs()
            job = jobs[remote_id]
            job["polls"] += 1
            _save(jobs)
            done = job["polls"] >= 2
            now = datetime.now(timezone.utc)
            events = [JobEvent(id=f"{remote_id}-{job['polls']}", created_at=now,
                               message=f"poll {job['polls']}")]
            return Refresh(
                job=RemoteJob(remote_id=remote_id,
                              status=JobStatus.SUCCEEDED if done else JobStatus.RUNNING,
                              fine_tuned_model=f"echo:{job['lines']}" if done else None,
                              step=job["polls"], total_steps=2),
                events=events, events_cursor=events[-1].id,
                metrics=[MetricPoint(step=job["polls"], train_loss=1.0 / job["polls"])],
            )

        def find_by_uid(self, uid):
            return None

        def cancel(self, remote_id):
            raise NotImplementedError

        def list_base_models(self):
            return [BaseModelInfo(id="echo-base")]

        def complete(self, model, messages, *, max_tokens=256, temperature=0.0):
            return Completion(text=messages[-1].content.split()[0], prompt_tokens=5,
                              completion_tokens=1)


    def quarter(output, expected):
        """Scores every answer 0.25: its mark in a summary can only come from here."""
        return 0.25
''')


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin built and installed by pip (no network, no dependencies) into a
    directory of its own, as ``pip install --target`` leaves it."""
    source = tmp_path_factory.mktemp("ftm-echo-plugin")
    (source / "pyproject.toml").write_text(PYPROJECT)
    (source / "ftm_echo_plugin").mkdir()
    (source / "ftm_echo_plugin" / "__init__.py").write_text(PLUGIN)
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--target",
            str(site),
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=240,
    )
    entry_points = next(site.glob("ftm_echo_plugin-0.1.0.dist-info")) / "entry_points.txt"
    assert "ftm.scorers" in entry_points.read_text()
    return site


def _ftm(site: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO_ROOT)])}
    done = subprocess.run(
        [sys.executable, "-m", "app", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"ftm {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_an_installed_plugin_provider_trains_and_its_scorer_evaluates(plugin_site, tmp_path):
    train, _ = labelling_files(tmp_path, n_train=30, n_validation=0)
    _ftm(plugin_site, "data", "add", str(train), "--name", "labels", "--val-fraction", "0.2")
    _ftm(
        plugin_site,
        "launch",
        "--provider",
        "echo",
        "--dataset",
        "labels",
        "--model",
        "echo-base",
        "--yes",
    )
    for _ in range(5):
        _ftm(plugin_site, "watch", "--once")
        if json.loads(_ftm(plugin_site, "jobs", "list", "--json"))[0]["status"] == "succeeded":
            break
    _ftm(
        plugin_site,
        "eval",
        "--task",
        "labels",
        "--dataset",
        "labels",
        "--provider",
        "echo",
        "--base",
        "echo-base",
        "--no-zero-shot",
        "--few-shot",
        "0",
        "--job",
        "1",
        "--scorer",
        "plugin:quarter",
        "--no-general",
    )

    database.reset()
    with read_session(database.get_engine()) as session:
        job = session.exec(select(Job)).one()
        runs = session.exec(select(EvalRun)).all()
    assert job.provider == "echo" and job.status == "succeeded", job.error
    assert job.fine_tuned_model == "echo:24"  # the plugin counted the 24-line train split
    assert job.train_loss == 0.5  # its second poll's metric, recorded by ftm's poller
    assert [r.model for r in runs] == ["echo:24"] and runs[0].provider == "echo"
    assert runs[0].summary["task"]["scores"] == {"plugin:quarter": pytest.approx(0.25)}


PROBE = """
from app.evaluation.scorers import ScorerError, build_scorer
from providers.registry import discover

print("providers:", sorted(discover().names()))
try:
    print("scorer:", build_scorer("plugin:quarter").score("x", None))
except ScorerError as exc:
    print("scorer error:", exc)
"""


@pytest.mark.parametrize("with_plugin", [True, False], ids=["installed", "not on the path"])
def test_discovery_depends_on_the_installed_distribution_only(plugin_site, with_plugin):
    """The control: the same probe finds the provider and the scorer with the plugin's
    directory on PYTHONPATH, and neither without it."""
    path = [str(plugin_site), str(REPO_ROOT)] if with_plugin else [str(REPO_ROOT)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert ("'echo'" in done.stdout) is with_plugin, done.stdout
    assert ("scorer: 0.25" in done.stdout) is with_plugin, done.stdout
    if not with_plugin:
        assert "no scorer plugin named 'quarter'" in done.stdout
