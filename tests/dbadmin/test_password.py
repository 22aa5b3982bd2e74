"""The password in a PostgreSQL URL is a secret: a real local training job leaves it in no
file and no output (the worker gets it through its environment), and a server that cannot
be reached is reported with the password masked."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import func, select

from app import database
from app.cli.main import cli
from app.jobs.launch import launch_job
from app.jobs.poller import Poller
from app.settings import PollerSettings, get_settings
from db.engine import read_session
from db.models import MetricPoint
from providers.local.jobdir import JobDir
from tests.jobs.conftest import job_row, poll_until
from tests.tiny import add_labelling_dataset, tiny_model  # noqa: F401  (session fixture)


def files_holding(root: Path, secret: str) -> list[Path]:
    return [
        path
        for path in root.rglob("*")
        if path.is_file() and not path.is_symlink() and secret.encode() in path.read_bytes()
    ]


@pytest.mark.slow
def test_a_local_job_on_postgresql_leaves_its_password_in_no_file_and_no_output(
    tiny_model,  # noqa: F811
    tmp_path,
    tmp_path_factory,
    monkeypatch,
    postgres_server,
):
    url = postgres_server.create_database()
    password = postgres_server.password
    # Set in a config file (outside the directories searched below), not in ftm's
    # environment: the worker inherits nothing, it must be handed the URL.
    config = tmp_path_factory.mktemp("config") / "config.toml"
    config.write_text(f'database_url = "{url}"\n')
    monkeypatch.setenv("FTM_CONFIG", str(config))
    monkeypatch.delenv("FTM_DATABASE_URL", raising=False)
    database.reset()
    try:
        engine = database.get_engine()
        data_dir = tmp_path / "labelling"
        add_labelling_dataset(engine, data_dir, n_train=16, n_validation=4)
        job = launch_job(
            "local",
            "labels",
            str(tiny_model),
            method="lora",
            hyperparameters={"n_epochs": 1},
            options={"torch_threads": 1, "device": "cpu", "logging_steps": 1},
        )
        poller = Poller(
            engine,
            settings=PollerSettings(concurrency=2, requests_per_second=100, stall_after_s=3600),
        )
        try:
            poll_until(
                poller,
                lambda: job_row(engine, job.id).status in ("succeeded", "failed", "cancelled"),
                timeout=240,
                pause=0.5,
            )
        finally:
            poller.close()
        row = job_row(engine, job.id)
        assert row.status == "succeeded", row.error
        # The worker wrote its progress to PostgreSQL: it had the full URL, from its env.
        with read_session(engine) as session:
            points = session.scalar(
                select(func.count()).select_from(MetricPoint).where(MetricPoint.job_id == row.id)
            )
        assert points > 0
        assert JobDir(get_settings().file_store.local_path(job.remote_id)).read_config()[
            "db_url"
        ] == database.masked_url(url)

        runner = CliRunner()
        for command in (
            ["jobs", "show", str(job.id), "--json"],
            ["jobs", "list", "--json"],
            ["db", "status"],
            ["db", "status", "--json"],
        ):
            result = runner.invoke(cli, command)
            assert result.exit_code == 0, (command, result.output)
            assert password not in result.output, command
        assert "***" in runner.invoke(cli, ["db", "status"]).output
        # FTM_HOME (job directory, config, logs, checkpoints, adapter) and the data
        assert files_holding(tmp_path, password) == []
    finally:
        database.reset()
        postgres_server.drop_database(url)


def test_an_unreachable_server_is_reported_without_its_password(monkeypatch):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    secret = "s3cret-Pa55word"
    monkeypatch.setenv(
        "FTM_DATABASE_URL", f"postgresql+psycopg://ftm:{secret}@127.0.0.1:{port}/ftm"
    )
    database.reset()
    runner = CliRunner()
    for command in (["db", "status"], ["db", "upgrade"], ["jobs", "list"]):
        result = runner.invoke(cli, command)
        assert result.exit_code == 2, (command, result.output)
        assert f"ftm:***@127.0.0.1:{port}" in result.output, command
        assert secret not in result.output, command
