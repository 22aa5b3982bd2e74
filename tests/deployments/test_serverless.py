"""A hosted model billed per token (an OpenAI fine-tune) needs no deployment: `ftm deploy`
records it as serverless, with no hourly price, found through its alias; targets that
cannot be resolved say what to do. The duration parser of --idle-stop."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from app import database
from app.cli.main import cli
from app.deployments.durations import DurationError, format_duration, parse_duration
from db.engine import write_session
from db.models import Alias, Promotion

FINE_TUNE = "ft:gpt-4o-mini-2024-07-18:acme:sentiment:abc123"


def ftm(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def promote(task: str, alias: str, provider: str, model: str) -> None:
    with write_session(database.get_engine()) as session:
        promotion = Promotion(
            task=task,
            alias=alias,
            action="promote",
            provider=provider,
            model=model,
            model_kind="hosted",
            who="test",
        )
        session.add(promotion)
        session.flush()
        session.add(Alias(task=task, alias=alias, promotion_id=promotion.id))


def test_an_openai_fine_tune_deploys_as_serverless_through_its_alias():
    promote("sentiment", "production", "openai", FINE_TUNE)
    out = ftm("deploy", "sentiment")  # TASK: its production alias
    assert out.exit_code == 0, out.output
    assert "serverless" in out.output and "billed per token" in out.output
    (listed,) = json.loads(ftm("deployments", "list", "--json").output)
    assert (listed["provider"], listed["model"], listed["kind"]) == (
        "openai",
        FINE_TUNE,
        "serverless",
    )
    assert (listed["state"], listed["task"], listed["alias"]) == (
        "running",
        "sentiment",
        "production",
    )
    assert listed["usd_per_hour"] is None and listed["cost_usd"] is None

    again = CliRunner().invoke(
        cli, ["deploy", "sentiment:production", "--hardware", "x"], catch_exceptions=False
    )
    assert "--hardware ignored" in again.stderr
    assert "Already deployed (deployment 1)" in again.output
    assert len(json.loads(ftm("deployments", "list", "--json").output)) == 1

    stopped = ftm("deployments", "stop", "1")
    assert stopped.exit_code == 0 and "Stopped deployment 1" in stopped.output
    assert json.loads(ftm("deployments", "list", "--json").output) == []
    assert ftm("deployments", "stop", "1").output.startswith("Deployment 1 is already stopped")


def test_targets_ftm_cannot_resolve_say_what_to_do():
    unknown = ftm("deploy", "ft:gpt-4o-mini-2024-07-18:acme:nothing:zzz")
    assert unknown.exit_code == 1
    assert "no ftm job produced the model" in unknown.output
    assert "--provider" in unknown.output and "Traceback" not in unknown.output
    missing = ftm("deployments", "show", "42")
    assert missing.exit_code == 1 and "no deployment 42" in missing.output
    bad = ftm("deploy", FINE_TUNE, "--provider", "openai", "--idle-stop", "soon")
    assert bad.exit_code == 2 and "30m, 2h, 45s" in bad.output


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800), ("2h", 7200), ("45s", 45), ("1h30m", 5400), ("90", 90)]
)
def test_durations_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "0m", "30 minutes", "m30"])
def test_durations_refused(text):
    with pytest.raises(DurationError):
        parse_duration(text)


def test_durations_read_back():
    assert [format_duration(s) for s in (None, 45, 720, 3660, 93600)] == [
        "-",
        "45 s",
        "12 min",
        "1 h 01 min",
        "1 d 2 h",
    ]
