"""A provider shipped as a separate distribution, with NO change to app/: a real package
with an ``ftm.providers`` entry point, built and installed by pip into a directory of its
own, put on the PYTHONPATH of ``ftm`` run as separate processes. Its backend is a real
HTTP service in this test process (a word-vote "model" that learns labels from the
uploaded training file). Through the contract alone it gets its settings
(``[providers.acme]`` in config.toml), its prices in ``ftm prices`` and ``ftm estimate``,
its default method and its own ``ftm acme`` command; then it is launched, polled,
evaluated against its base, promoted and exported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.tiny import labelling_files

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "ftm-acme-fit"
version = "0.1.0"

[project.entry-points."ftm.providers"]
acme = "ftm_acme_fit:AcmeProvider"

[tool.setuptools]
packages = ["ftm_acme_fit"]
"""

PROVIDER = textwrap.dedent('''
    """Acme Fit: a hosted fine-tuning service, as a third-party ftm provider."""
    from dataclasses import replace
    from datetime import date, datetime, timezone
    from pathlib import Path

    import httpx
    from pydantic import BaseModel, ConfigDict

    from providers.base import Capabilities, Provider
    from providers.pricing import ModelPrice, PriceSource, PriceTable
    from providers.types import (BaseModelInfo, Completion, JobEvent, JobStatus, MetricPoint,
                                 Refresh, RemoteJob)


    class AcmeSettings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        base_url: str = "http://127.0.0.1:9"
        """The Acme Fit API."""


    class AcmeProvider(Provider):
        name = "acme"
        display_name = "Acme Fit"
        # "sft": a method no built-in provider has, so a launch without --method shows
        # the default came from this provider's declaration.
        capabilities = Capabilities(per_token_billing=True, methods=("sft",))
        settings_model = AcmeSettings

        @classmethod
        def from_config(cls, config, context):
            return cls(config.base_url)

        def __init__(self, base_url="http://127.0.0.1:9"):
            self.base_url = base_url.rstrip("/")

        def call(self, method, path, **kwargs):
            response = httpx.request(method, self.base_url + path, timeout=10, **kwargs)
            response.raise_for_status()
            return response.json()

        @classmethod
        def pricing(cls):
            return PriceTable(
                basis="tokens",
                sources={"list": PriceSource("Acme Fit price list", date(2026, 10, 1))},
                models={"acme-base": ModelPrice(training=2.0, ft_input=0.5, ft_output=1.5,
                                                base_input=0.25, base_output=0.75,
                                                hosting_per_hour=0.1, source="list")},
            )

        @classmethod
        def cli_commands(cls):
            return ("ftm_acme_fit.cli:acme",)

        def prepare(self, spec):
            uploaded = self.call("POST", "/files", content=Path(spec.train_path).read_bytes())
            return replace(spec, options={**spec.options, "file_id": uploaded["id"]})

        def create(self, spec):
            return self._remote(self.call("POST", "/jobs", json={
                "model": spec.base_model, "file_id": spec.options["file_id"],
                "method": spec.method}))

        def _remote(self, job):
            return RemoteJob(remote_id=job["id"], status=JobStatus(job["status"]),
                             fine_tuned_model=job.get("fine_tuned_model"),
                             trained_tokens=job.get("trained_tokens"),
                             step=job["step"], total_steps=2)

        def refresh(self, remote_id, events_cursor=None):
            job = self.call("GET", f"/jobs/{remote_id}")
            event = JobEvent(id=f"{remote_id}-{job['step']}", created_at=datetime.now(timezone.utc),
                             message=f"step {job['step']}")
            return Refresh(job=self._remote(job), events=[event], events_cursor=event.id,
                           metrics=[MetricPoint(step=job["step"], train_loss=job["loss"])])

        def cancel(self, remote_id):
            return self._remote(self.call("POST", f"/jobs/{remote_id}/cancel"))

        def list_base_models(self):
            return [BaseModelInfo(id=m, methods=("sft",)) for m in self.call("GET", "/models")]

        def complete(self, model, messages, *, max_tokens=256, temperature=0.0):
            out = self.call("POST", "/chat", json={
                "model": model,
                "messages": [{"role": m.role, "content": m.content} for m in messages]})
            return Completion(text=out["text"], prompt_tokens=out["prompt_tokens"],
                              completion_tokens=1)

        def model_endpoint(self, *, simulated=False):
            return self.base_url
''')

CLI = textwrap.dedent('''
    """`ftm acme`: Acme Fit's own commands (ftm adds them from AcmeProvider.cli_commands)."""
    import click


    @click.group("acme")
    def acme():
        """Acme Fit extras."""


    @acme.command("models")
    def models():
        """The base models Acme Fit trains."""
        from app.jobs.providers import make_provider  # ftm's public factory: its settings

        for model in make_provider("acme").list_base_models():
            click.echo(model.id)
''')


class AcmeService:
    """The Acme Fit API over real HTTP: files, jobs that finish on their second poll, and
    a chat endpoint whose fine-tuned models label by a word vote learned from the file."""

    def __init__(self) -> None:
        self.files: dict[str, str] = {}
        self.jobs: dict[str, dict] = {}
        self.models: dict[str, dict[str, Counter]] = {}
        self.requests: list[str] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _send(self, payload) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                service.requests.append(f"GET {self.path}")
                if self.path == "/models":
                    return self._send(["acme-base"])
                job = service.jobs[self.path.removeprefix("/jobs/")]
                if job["status"] in ("queued", "running"):
                    job["step"] += 1
                    job["loss"] = 1.0 / job["step"]
                    if job["step"] >= 2:
                        service.finish(job)
                    else:
                        job["status"] = "running"
                return self._send(job)

            def do_POST(self) -> None:
                service.requests.append(f"POST {self.path}")
                body = self._body()
                if self.path == "/files":
                    file_id = f"file-{len(service.files) + 1}"
                    service.files[file_id] = body.decode()
                    return self._send({"id": file_id})
                if self.path == "/jobs":
                    spec = json.loads(body)
                    job_id = f"acme-job-{len(service.jobs) + 1}"
                    service.jobs[job_id] = {
                        "id": job_id, "status": "queued", "step": 0, "loss": None,
                        "model": spec["model"], "file_id": spec["file_id"],
                        "method": spec["method"],
                    }  # fmt: skip
                    return self._send(service.jobs[job_id])
                if self.path.endswith("/cancel"):
                    job = service.jobs[self.path.split("/")[2]]
                    job["status"] = "cancelled"
                    return self._send(job)
                if self.path == "/chat":
                    return self._send(service.chat(json.loads(body)))
                self.send_error(404)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def finish(self, job: dict) -> None:
        votes: dict[str, Counter] = {}
        lines = self.files[job["file_id"]].splitlines()
        for line in lines:
            messages = json.loads(line)["messages"]
            label = messages[-1]["content"]
            for word in _words(messages[-2]["content"]):
                votes.setdefault(word, Counter())[label] += 1
        name = f"acme-base:ft:{job['id']}"
        self.models[name] = votes
        job.update(status="succeeded", fine_tuned_model=name, trained_tokens=len(lines) * 20)

    def chat(self, request: dict) -> dict:
        question = request["messages"][-1]["content"]
        tally: Counter = Counter()
        for word in _words(question):
            tally.update(self.models.get(request["model"], {}).get(word, Counter()))
        text = tally.most_common(1)[0][0] if tally else "unsure"
        prompt_tokens = sum(len(m["content"].split()) for m in request["messages"])
        return {"text": text, "prompt_tokens": prompt_tokens}

    def __enter__(self) -> AcmeService:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _words(text: str) -> list[str]:
    # Only words that tell a label apart: the sentence frames are shared by every label.
    return [w.strip(".?!,").lower() for w in text.split() if len(w.strip(".?!,")) > 2]


@pytest.fixture(scope="module")
def acme_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The distribution built and installed by pip (no network, no dependencies) into a
    directory of its own, as ``pip install --target`` leaves it."""
    source = tmp_path_factory.mktemp("ftm-acme-fit")
    (source / "pyproject.toml").write_text(PYPROJECT)
    package = source / "ftm_acme_fit"
    package.mkdir()
    (package / "__init__.py").write_text(PROVIDER)
    (package / "cli.py").write_text(CLI)
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--target", str(site), str(source)],
        check=True, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    entry_points = next(site.glob("ftm_acme_fit-0.1.0.dist-info")) / "entry_points.txt"
    assert "acme = ftm_acme_fit:AcmeProvider" in entry_points.read_text()
    return site


@pytest.fixture
def acme() -> Iterator[AcmeService]:
    with AcmeService() as service:
        yield service


def _ftm(site: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO_ROOT)])}
    done = subprocess.run(
        [sys.executable, "-m", "app", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"ftm {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_a_separately_installed_provider_goes_from_estimate_to_export(
    acme_site, acme, ftm_home, tmp_path, monkeypatch
):
    ftm_home.mkdir(parents=True, exist_ok=True)
    (ftm_home / "config.toml").write_text(f'[providers.acme]\nbase_url = "{acme.url}"\n')

    # Its own command, configured from its own table.
    assert _ftm(acme_site, "acme", "models").split() == ["acme-base"]
    assert "acme" in _ftm(acme_site, "--help")

    # Its declared prices: listed, and the only source of its options' figures.
    listed = _ftm(acme_site, "prices")
    assert "Acme Fit, USD per 1M tokens" in listed and "+ $0.1/h hosted" in listed
    prices = json.loads(_ftm(acme_site, "prices", "--json"))["providers"]["acme"]
    assert prices["display_name"] == "Acme Fit" and prices["models"]["acme-base"]["training"] == 2.0
    train, _ = labelling_files(tmp_path, n_train=60, n_validation=0)
    _ftm(acme_site, "data", "add", str(train), "--name", "labels", "--val-fraction", "0.25")
    estimate = json.loads(
        _ftm(acme_site, "estimate", "labels", "--provider", "acme", "--model", "acme-base",
             "--json")
    )  # fmt: skip
    options = {o["key"]: o for o in estimate["options"]}
    assert set(options) == {"baseline:acme-base", "hosted:acme-base"}
    training = options["hosted:acme-base"]["training"]
    assert (
        training["usd_per_1m_tokens"] == 2.0 and training["price_source"] == "Acme Fit price list"
    )
    assert options["hosted:acme-base"]["one_time_usd"] == pytest.approx(
        training["billable_tokens"] * 2.0 / 1e6
    )
    hosted = options["hosted:acme-base"]
    assert hosted["inference"]["usd_input_per_1m"] == 0.5
    assert options["baseline:acme-base"]["inference"]["usd_output_per_1m"] == 0.75
    # Its hourly hosting fee is part of the monthly cost: 730 h x $0.10 on top of requests.
    requests = estimate["requests_per_month"]
    assert hosted["monthly_usd"] == pytest.approx(
        hosted["inference"]["usd_per_request"] * requests + 73.0
    )
    # The user's prices file overrides this provider's figure like any other's.
    mine = tmp_path / "prices.toml"
    mine.write_text('[acme.models."acme-base"]\ntraining = 1.0\n')
    monkeypatch.setenv("FTM_PRICES_FILE", str(mine))
    again = json.loads(_ftm(acme_site, "estimate", "labels", "--provider", "acme", "--json"))
    monkeypatch.delenv("FTM_PRICES_FILE")
    overridden = {o["key"]: o for o in again["options"]}["hosted:acme-base"]["training"]
    assert overridden["usd_per_1m_tokens"] == 1.0 and "prices.toml" in overridden["price_source"]

    # The comparison over every provider prices each on its default model.
    everything = json.loads(_ftm(acme_site, "estimate", "labels", "--json"))
    kinds = {o["key"]: o["kind"] for o in everything["options"]}
    assert kinds["hosted:acme-base"] == kinds["hosted:gpt-4o-mini-2024-07-18"] == "hosted"
    assert any(key.startswith("local:") for key in kinds), kinds
    labels = [o["label"] for o in everything["options"]]
    assert "acme-base fine-tuned on Acme Fit" in labels, labels

    # Launched with its default method, polled to the end over HTTP.
    _ftm(acme_site, "launch", "--provider", "acme", "--dataset", "labels", "--model",
         "acme-base", "--yes")  # fmt: skip
    assert acme.jobs["acme-job-1"]["method"] == "sft"
    for _ in range(5):
        _ftm(acme_site, "watch", "--once")
        job = json.loads(_ftm(acme_site, "jobs", "list", "--json"))[0]
        if job["status"] == "succeeded":
            break
    assert job["status"] == "succeeded" and job["provider"] == "acme"
    model = job["fine_tuned_model"]
    assert model == "acme-base:ft:acme-job-1"

    # Evaluated against its base (zero-shot and 3-shot), promoted through the gates, exported.
    runs = json.loads(
        _ftm(acme_site, "eval", "--task", "labels", "--dataset", "labels", "--provider", "acme",
             "--base", "acme-base", "--few-shot", "3", "--job", str(job["id"]), "--json")
    )  # fmt: skip
    by_kind = {r["kind"]: r for r in runs}
    tuned, few = by_kind["fine_tuned"], by_kind["few_shot"]
    assert tuned["summary"]["task"]["quality"] > few["summary"]["task"]["quality"]
    promoted = _ftm(acme_site, "promote", "--task", "labels", "--run", str(tuned["run_id"]),
                    "--why", "learned the labels")  # fmt: skip
    assert f"labels/production -> {model}" in promoted
    record = json.loads(
        _ftm(acme_site, "models", "export", "--alias", "production", "--format", "json")
    )
    assert record["model"] == model and record["provider"] == "acme"
    assert record["base_url"] == acme.url
    assert "POST /chat" in acme.requests and "POST /files" in acme.requests
