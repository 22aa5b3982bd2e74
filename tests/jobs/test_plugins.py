"""A third-party provider installed as a distribution with an ``ftm.providers`` entry
point launches a job through `launch_job` and is polled to the end; a broken plugin is
reported and skipped."""

from __future__ import annotations

import sys
import textwrap

import pytest

from app.jobs.launch import LaunchRejected, launch_job
from app.jobs.poller import Poller
from app.jobs.providers import registry
from tests.jobs.conftest import job_row, make_dataset, poll_until

PLUGIN = textwrap.dedent('''
    """A tiny third-party provider: 'trains' by counting lines, in memory."""
    from datetime import datetime, timezone
    from pathlib import Path

    from pydantic import BaseModel, ConfigDict

    from providers.base import Capabilities, Provider
    from providers.types import (BaseModelInfo, Completion, JobEvent, JobStatus, MetricPoint,
                                 Refresh, RemoteJob)

    JOBS = {}


    class EchoSettings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        greeting: str = "hello"


    class EchoProvider(Provider):
        name = "echo"
        display_name = "Echo"
        capabilities = Capabilities(methods=("supervised",))
        settings_model = EchoSettings

        @classmethod
        def from_config(cls, config, context):
            provider = cls()
            provider.greeting = config.greeting
            return provider

        def prepare(self, spec):
            lines = Path(spec.train_path).read_text().splitlines()
            return type(spec)(**{**spec.__dict__, "options": {"lines": len(lines)}})

        def create(self, spec):
            remote_id = "echo-" + spec.ftm_job_uid[:8]
            JOBS[remote_id] = {"lines": spec.options["lines"], "polls": 0, "uid": spec.ftm_job_uid}
            return RemoteJob(remote_id=remote_id, status=JobStatus.QUEUED)

        def refresh(self, remote_id, events_cursor=None):
            job = JOBS[remote_id]
            job["polls"] += 1
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
            return Completion(text=messages[-1].content)
''')

ENTRY_POINTS = """\
[ftm.providers]
echo = ftm_echo_plugin:EchoProvider
broken = ftm_no_such_module:Provider
"""


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "ftm_echo_plugin").mkdir(parents=True)
    (site / "ftm_echo_plugin" / "__init__.py").write_text(PLUGIN)
    dist = site / "ftm_echo_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ftm-echo-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(site))
    yield
    sys.modules.pop("ftm_echo_plugin", None)


def test_registry_finds_builtins_and_the_plugin_and_reports_the_broken_one(installed_plugin):
    reg = registry()
    assert {"openai", "echo"} <= set(reg.names())
    assert "broken" not in reg.names()
    assert "ModuleNotFoundError" in reg.broken["broken"]


def test_a_plugin_provider_launches_and_is_polled(installed_plugin, engine, tmp_path):
    make_dataset(engine, tmp_path, n_train=12)
    job = launch_job("echo", "toy", "echo-base")
    assert job.provider == "echo" and job.status == "queued"
    assert job.remote_id == "echo-" + job.uid[:8]
    poller = Poller(engine)
    poll_until(poller, lambda: job_row(engine, job.id).status == "succeeded")
    poller.close()
    row = job_row(engine, job.id)
    assert row.fine_tuned_model == "echo:12" and row.train_loss == 0.5


def test_launching_on_a_broken_plugin_says_why(installed_plugin, engine, tmp_path):
    make_dataset(engine, tmp_path)
    with pytest.raises(
        LaunchRejected, match="unknown provider 'broken'.*failed to load.*ModuleNotFoundError"
    ):
        launch_job("broken", "toy", "m")


def test_an_installed_plugin_gets_its_settings_from_its_own_table(
    installed_plugin, engine, tmp_path, monkeypatch
):
    from app.jobs.launch import plan_launch
    from app.jobs.providers import make_provider
    from app.settings import get_settings

    monkeypatch.setenv("FTM_PROVIDERS__ECHO__GREETING", "bonjour")
    get_settings.cache_clear()
    assert make_provider("echo").greeting == "bonjour"

    monkeypatch.delenv("FTM_PROVIDERS__ECHO__GREETING")
    monkeypatch.setenv("FTM_PROVIDERS__ECHO__GRETING", "typo")
    get_settings.cache_clear()
    make_dataset(engine, tmp_path)
    plan = plan_launch("echo", "toy", "echo-base", engine=engine)
    assert any(
        "providers.echo.greting" in p and "FTM_PROVIDERS__ECHO__GRETING" in p for p in plan.problems
    ), plan.problems
    get_settings.cache_clear()
