"""One launch plan (`app.jobs.launch.plan_launch`): what `ftm launch` prints and acts on
is what the TUI wizard shows (tests/tui/test_launch_wizard.py): the provider's problems,
the warnings (the OpenAI job-creation cutoff among them) and the estimate."""

from __future__ import annotations

from datetime import date

import pytest
from click.testing import CliRunner
from sqlmodel import select

from app.cli.main import cli
from app.jobs.launch import LaunchRejected, plan_launch
from db.engine import read_session
from db.models import Job
from tests.jobs.conftest import MODEL, make_dataset

AFTER_CUTOFF = date(2027, 1, 10)
CUTOFF_PASSED = "OpenAI stopped accepting new fine-tuning jobs after 2027-01-06"


def _jobs(engine) -> list[Job]:
    with read_session(engine) as session:
        return list(session.exec(select(Job)))


def test_the_plan_validates_warns_and_prices_without_recording(engine, tmp_path):
    make_dataset(engine, tmp_path)
    plan = plan_launch("openai", "toy", MODEL, today=date(2026, 12, 1), engine=engine)
    assert plan.problems == []
    assert any(
        "accepts new fine-tuning jobs until 2027-01-06 (36 days left)" in w for w in plan.warnings
    ), plan.warnings
    assert plan.estimate.estimate["training_cost_usd"] > 0 and plan.estimate.simulated
    late = plan_launch("openai", "toy", MODEL, today=AFTER_CUTOFF, engine=engine)
    assert any(CUTOFF_PASSED in w for w in late.warnings)
    bad = plan_launch("openai", "toy", MODEL, hyperparameters={"n_epochs": 60}, engine=engine)
    assert any("n_epochs=60 is out of range" in p for p in bad.problems)
    assert _jobs(engine) == [], "planning records nothing"
    with pytest.raises(LaunchRejected, match="no dataset"):
        plan_launch("openai", "nope", MODEL, engine=engine)


def test_ftm_launch_prints_the_plans_warnings_and_refuses_its_problems(
    engine, tmp_path, monkeypatch
):
    monkeypatch.setenv("FTM_TODAY", AFTER_CUTOFF.isoformat())  # the lifecycle service's clock
    make_dataset(engine, tmp_path)
    runner = CliRunner()
    declined = runner.invoke(
        cli, ["launch", "--provider", "openai", "--dataset", "toy", "--model", MODEL], input="n\n"
    )
    expected = plan_launch("openai", "toy", MODEL, engine=engine).warnings
    assert any(CUTOFF_PASSED in w for w in expected)
    for warning in expected:
        assert warning in " ".join(declined.output.split()), declined.output
    assert declined.exit_code != 0 and "nothing was recorded" in declined.output
    refused = runner.invoke(
        cli,
        [
            "launch",
            "--provider",
            "openai",
            "--dataset",
            "toy",
            "--model",
            MODEL,
            "--epochs",
            "60",
            "--yes",
        ],
    )
    assert refused.exit_code != 0
    assert "OpenAI cannot run this job: n_epochs=60 is out of range" in refused.output
    assert _jobs(engine) == []


def test_the_plan_shows_the_providers_own_warnings(engine, tmp_path):
    """A provider declares its own warnings on the contract; the plan shows them."""
    from tests.evaluation.helpers import EchoLabelProvider

    class RoundingProvider(EchoLabelProvider):
        name = "rounding"
        display_name = "Rounding"

        def launch_warnings(self, spec):
            return [f"{self.display_name} rounds {spec.base_model} epochs up to whole ones"]

    make_dataset(engine, tmp_path)
    plan = plan_launch("rounding", "toy", "base-1", engine=engine, provider=RoundingProvider())
    assert "Rounding rounds base-1 epochs up to whole ones" in plan.warnings
