"""A hosted job's weights used on this machine, through the CLI and the provider contract:
`ftm jobs download` fetches them with `Provider.download_weights` (a hosted provider
installed as a distribution, downloading from the Together emulator over real HTTP with
the real SDK), `ftm eval --local-weights` evaluates them with real local generation, and
`ftm local merge` merges the downloaded adapter. Nothing in app/ names the provider."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from click.testing import CliRunner
from sqlmodel import select

from app import database
from app.cli.main import cli
from app.datasets.store import add_dataset
from db.engine import read_session, write_session
from db.models import Artifact, EvalRun, Job
from providers.local import demo_data
from tests.together_weights import finished_tiny_job

PLUGIN = textwrap.dedent('''
    """A hosted provider whose weights come from a Together-style download."""
    import os
    from pathlib import Path

    from pydantic import BaseModel

    from providers.base import Capabilities, Provider


    class Settings(BaseModel):
        base_url: str = ""
        """Where the service answers."""


    class Downloads(Provider):
        name = "downloads"
        display_name = "Downloads"
        capabilities = Capabilities(downloadable_weights=("adapter", "merged"))
        settings_model = Settings

        def __init__(self, base_url=""):
            self.base_url = base_url

        @classmethod
        def from_config(cls, config, context):
            return cls(config.base_url)

        def download_weights(self, remote_id, dest, kind="adapter"):
            import together

            from providers.together.weights import download_artifact

            key = os.environ["DOWNLOADS_TEST_KEY"]  # read when the client is built
            with together.Together(base_url=self.base_url, api_key=key) as client:
                return download_artifact(client, remote_id, Path(dest), kind)

        def prepare(self, spec):
            raise NotImplementedError

        def create(self, spec):
            raise NotImplementedError

        def refresh(self, remote_id, events_cursor=None):
            raise NotImplementedError

        def cancel(self, remote_id):
            raise NotImplementedError

        def list_base_models(self):
            return []

        def complete(self, model, messages, *, max_tokens=256, temperature=0.0):
            raise NotImplementedError


    class NoDownloads(Downloads):
        name = "nodownloads"
        display_name = "No Downloads"
        capabilities = Capabilities()
''')

ENTRY_POINTS = """\
[ftm.providers]
downloads = ftm_downloads_plugin:Downloads
nodownloads = ftm_downloads_plugin:NoDownloads
"""


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch, server):
    site = tmp_path / "site"
    (site / "ftm_downloads_plugin").mkdir(parents=True)
    (site / "ftm_downloads_plugin" / "__init__.py").write_text(PLUGIN)
    dist = site / "ftm_downloads_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: ftm-downloads-plugin\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("FTM_PROVIDERS__DOWNLOADS__BASE_URL", server.base_url)
    monkeypatch.setenv("DOWNLOADS_TEST_KEY", server.api_key)
    yield
    sys.modules.pop("ftm_downloads_plugin", None)


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})


@pytest.fixture
def hosted_job(installed_plugin, client, server, tmp_path):
    """A finished job on the emulator, tracked by ftm as a `downloads` job, with the
    labelling dataset it was trained on."""
    remote_id = finished_tiny_job(client, server, tmp_path, lora_r=4)
    data = demo_data.write_jsonl(tmp_path / "labels.jsonl", demo_data.labelling_examples(40, 1))
    dataset, _ = add_dataset(data, name="labels", val_fraction=0.2, seed=1)
    engine = database.get_engine()
    with write_session(engine) as session:
        job = Job(
            name="labels-hosted",
            provider="downloads",
            remote_id=remote_id,
            base_model="ftm-sandbox/tiny-llama",
            dataset_id=dataset.id,
            method="lora",
            status="succeeded",
            fine_tuned_model="sandbox/tiny-llama-labels",
        )
        session.add(job)
        session.flush()
        job_id = job.id
    return job_id


def _artifacts(job_id: int) -> list[Artifact]:
    with read_session(database.get_engine()) as session:
        return list(session.exec(select(Artifact).where(Artifact.job_id == job_id)).all())


def test_download_records_the_adapter_in_the_job_directory(hosted_job, server, ftm_home):
    base_dir = str(server.state.weights.base_dir)
    result = _cli("jobs", "download", str(hosted_job), "--base-model", base_dir)
    assert result.exit_code == 0, result.output
    [row] = _artifacts(hosted_job)
    assert row.kind == "adapter" and row.meta["format"] == "peft" and row.meta["rank"] == 4
    assert row.meta["provider_base_model"] == "ftm-sandbox/tiny-llama"
    with read_session(database.get_engine()) as session:
        uid = session.get(Job, hosted_job).uid
    assert row.uri == f"jobs/{uid}/adapter"  # under the storage root (the home here)
    config = json.loads((ftm_home / "jobs" / uid / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == base_dir
    assert row.uri in result.output and f"--job {hosted_job} --local-weights" in result.output

    again = _cli("jobs", "download", str(hosted_job), "--kind", "merged")
    assert again.exit_code == 0, again.output
    assert sorted(a.kind for a in _artifacts(hosted_job)) == ["adapter", "merged"]
    assert (ftm_home / "jobs" / uid / "merged" / "config.json").is_file()


def test_eval_runs_the_downloaded_adapter_locally(hosted_job, server):
    assert (
        _cli(
            "jobs", "download", str(hosted_job), "--base-model", str(server.state.weights.base_dir)
        ).exit_code
        == 0
    )
    result = _cli(
        "eval", "--task", "labels", "--job", str(hosted_job), "--local-weights",
        "--few-shot", "0", "--no-general", "--limit", "4", "--max-tokens", "4", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    runs = json.loads(result.output[result.output.index("[") :])
    assert [r["kind"] for r in runs] == ["zero_shot", "fine_tuned"]
    assert all(r["status"] == "succeeded" for r in runs), runs
    [adapter] = [a for a in _artifacts(hosted_job) if a.kind == "adapter"]
    assert runs[1]["model"] == adapter.uri
    assert runs[0]["model"] == str(server.state.weights.base_dir)
    with read_session(database.get_engine()) as session:
        stored = session.get(EvalRun, runs[1]["run_id"])
    assert stored.provider == "local" and stored.job_id == hosted_job
    assert stored.summary["task"]["n"] == 4


def test_local_merge_accepts_the_downloaded_adapter(hosted_job, server, ftm_home):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    refused = _cli("local", "merge", str(hosted_job))
    assert refused.exit_code != 0
    assert f"ftm jobs download {hosted_job}" in refused.output
    assert "Traceback" not in refused.output

    base_dir = server.state.weights.base_dir
    assert _cli("jobs", "download", str(hosted_job), "--base-model", str(base_dir)).exit_code == 0
    result = _cli("local", "merge", str(hosted_job))
    assert result.exit_code == 0, result.output
    [adapter] = [a for a in _artifacts(hosted_job) if a.kind == "adapter"]
    merged_dir = ftm_home / "jobs" / adapter.uri.split("/")[-2] / "merged"
    assert (merged_dir / "config.json").is_file()
    ids = torch.tensor([[5, 17, 42, 9]])
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    adapter_dir = ftm_home / adapter.uri  # a reference under the storage root (the home)
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), adapter_dir)
    with torch.inference_mode():
        difference = (merged(ids).logits - tuned.eval()(ids).logits).abs().max()
    assert difference < 1e-4


def test_refusals_name_the_job_and_what_to_do(hosted_job, ftm_home):
    with write_session(database.get_engine()) as session:
        job = session.get(Job, hosted_job)
        job.status = "running"
        other = Job(name="x", provider="nodownloads", base_model="m", method="lora",
                    status="succeeded", remote_id="r-1")  # fmt: skip
        session.add(other)
        session.flush()
        other_id = other.id
    running = _cli("jobs", "download", str(hosted_job))
    assert running.exit_code != 0 and "once it has succeeded" in running.output
    unsupported = _cli("jobs", "download", str(other_id))
    assert unsupported.exit_code != 0
    assert "nodownloads, which has no adapter weights to download" in unsupported.output
    not_downloaded = _cli("eval", "--task", "t", "--job", str(hosted_job), "--local-weights")
    assert not_downloaded.exit_code != 0
    assert f"download them first: ftm jobs download {hosted_job}" in not_downloaded.output
    for result in (running, unsupported, not_downloaded):
        assert "Traceback" not in result.output
    assert not (ftm_home / "jobs").exists() or not any((ftm_home / "jobs").iterdir())


def test_the_contract_default_offers_no_download(tmp_path):
    from providers.base import Capabilities
    from providers.errors import UnsupportedOperation
    from tests.evaluation.helpers import EchoLabelProvider

    assert Capabilities().downloadable_weights == ()
    with pytest.raises(UnsupportedOperation, match="Echo \\(tests\\) offers no download"):
        EchoLabelProvider().download_weights("job-1", tmp_path / "adapter", "adapter")
    assert not (tmp_path / "adapter").exists()
