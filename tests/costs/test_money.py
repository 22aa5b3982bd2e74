"""One money formatter: the same amount prints the same way in every face."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from app.costs.money import usd

# (amount, how every face prints it): a self-hosted request, under a cent, cents,
# thousands, zero, and no figure at all.
AMOUNTS = [
    (2.5e-7, "$0.00000025"),
    (0.0042, "$0.0042"),
    (0.0126, "$0.013"),
    (12.3, "$12.30"),
    (1234.567, "$1,234.57"),
    (0.0, "$0.00"),
    (None, "-"),
]


def test_ordinary_amounts_in_cents_and_tiny_ones_with_two_significant_digits():
    for amount, text in AMOUNTS:
        assert usd(amount) == text
    assert usd(2.538e-08) == "$0.000000025"  # never "$0.0000", as if free
    assert usd(-0.002) == "-$0.0020"


@pytest.mark.parametrize(("amount", "text"), AMOUNTS)
def test_every_face_prints_an_amount_the_same_way(amount, text):
    from app.cli.costs import _usd as estimate_table
    from app.jobs.queries import JobRow
    from app.tui.screens.confirm import ConfirmScreen
    from app.tui.views.costs import _usd as costs_tab
    from app.tui.views.jobs import _cells

    row = JobRow(
        id=7,
        name="j",
        status="succeeded",
        stalled=False,
        step=None,
        total_steps=None,
        train_loss=None,
        eval_loss=None,
        estimated_cost_usd=amount,
        actual_cost_usd=amount,
        created_at=datetime.now(UTC),
        provider="local",
        simulated=False,
        base_model="m",
        dataset=None,
        remote_id=None,
    )
    cells = _cells(row, "now")
    # the jobs table's estimated and actual columns
    assert cells[5].plain == cells[6].plain == text
    assert estimate_table(amount) == text  # `ftm estimate`
    assert costs_tab(amount) == text  # the Costs tab
    if amount is not None:  # a dialog states money only when something is billed
        assert ConfirmScreen("Launch?", spend_usd=amount).spend_line == f"Estimated spend: {text}"


def test_jobs_show_prints_the_amounts_as_every_other_face(ftm_home):
    from app.cli.main import cli
    from app.database import get_engine
    from db.engine import write_session
    from db.models import Job

    with write_session(get_engine()) as s:
        s.add(
            Job(
                name="tiny",
                provider="local",
                base_model="m",
                method="lora",
                status="succeeded",
                estimated_cost_usd=2.5e-7,
                actual_cost_usd=1234.567,
            )
        )
    out = CliRunner().invoke(
        cli, ["jobs", "show", "1"], env={"COLUMNS": "200"}, catch_exceptions=False
    )
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert any("estimated cost" in line and "$0.00000025" in line for line in lines), out.output
    assert any("actual cost" in line and "$1,234.57" in line for line in lines), out.output


async def test_the_job_detail_screen_prints_the_amounts_as_every_other_face(ftm_home):
    from textual.widgets import Static

    from app.database import get_engine
    from app.tui.app import create_app
    from db.engine import write_session
    from db.models import Job
    from tests.tui.helpers import settle

    with write_session(get_engine()) as s:
        s.add(
            Job(
                name="tiny",
                provider="local",
                base_model="m",
                method="lora",
                status="succeeded",
                estimated_cost_usd=2.5e-7,
                actual_cost_usd=1234.567,
            )
        )
    app = create_app(start_poller=False)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await pilot.press("enter")  # the job's detail
        await settle(pilot)
        summary = str(app.screen.query_one("#job-summary", Static).render())
    assert f"cost: estimated {usd(2.5e-7)}, actual {usd(1234.567)}" in summary
    assert "$0.00000025" in summary
