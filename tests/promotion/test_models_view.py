"""Pilot tests of the Models tab: leaderboard with alias holders, promote and roll back
from the keyboard behind a confirmation, refusal when a gate fails."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable

from app.database import get_engine
from app.evaluation.candidates import Candidate, split_example
from app.evaluation.runner import run_eval
from app.promotion import aliases
from app.tui.app import create_app
from app.tui.screens.confirm import ConfirmScreen
from app.tui.screens.promote import PromoteScreen
from app.tui.views.models import ModelsView
from tests.evaluation.helpers import EchoLabelProvider, routing_config, routing_examples
from tests.tui.helpers import settle


def _runs():
    engine = get_engine()
    provider = EchoLabelProvider()
    examples = [split_example(e, i) for i, e in enumerate(routing_examples(6))]
    out = {}
    for kind, model, kw in (
        ("few_shot", "base", {"k": 3}),
        ("fine_tuned", "good", {"base_model": "base"}),
        ("fine_tuned", "forgetful", {"base_model": "base"}),
    ):
        out[model] = run_eval(
            Candidate(kind, "echo", model, **kw),
            examples,
            routing_config(),
            provider=provider,
            engine=engine,
            train_examples=routing_examples(12),
        )
    return out


async def _open_models(pilot):
    await pilot.press("m")
    await settle(pilot)
    view = pilot.app.query_one(ModelsView)
    table = view.query_one(DataTable)
    table.focus()
    await pilot.pause()
    return view, table


def _select(table: DataTable, run_id: int) -> None:
    table.move_cursor(row=table.get_row_index(str(run_id)))


async def test_leaderboard_promote_and_roll_back_from_the_keyboard():
    runs = _runs()
    engine = get_engine()
    # an earlier holder, so there is something to roll back to
    aliases.promote(
        engine,
        task="routing",
        alias="production",
        run_id=runs["forgetful"].id,
        who="ci",
        override=True,
        why="earlier experiment",
    )
    app = create_app(start_poller=False)
    async with app.run_test(size=(140, 40)) as pilot:
        view, table = await _open_models(pilot)
        assert table.row_count == 3
        cells = [str(c) for c in table.get_row(str(runs["forgetful"].id))]
        assert "★ production" in cells
        _select(table, runs["good"].id)
        await pilot.pause()
        details = str(view.query_one("#models-details").render())
        assert f"run {runs['good'].id}" in details and "label 100.0%" in details

        await pilot.press("p")
        await settle(pilot)
        assert isinstance(app.screen, PromoteScreen)  # gates shown, alias and why asked
        assert "✓ baseline" in app.screen.gate_lines and "✓ general" in app.screen.gate_lines
        assert app.screen.query_one("#promote-alias").value == "production"
        await pilot.press("y")
        await settle(pilot)
        holder = aliases.current(engine, "routing", "production")
        assert holder.promotion.model == "good" and holder.promotion.why == "promoted from the TUI"
        assert "★ production" in [str(c) for c in table.get_row(str(runs["good"].id))]

        await pilot.press("b")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # declined: nothing changes
        await settle(pilot)
        assert aliases.current(engine, "routing", "production").promotion.model == "good"
        await pilot.press("b")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert aliases.current(engine, "routing", "production").promotion.model == "forgetful"


@pytest.mark.expects_tui_error
async def test_a_failing_gate_refuses_without_a_confirmation():
    runs = _runs()
    app = create_app(start_poller=False)
    async with app.run_test(size=(140, 40)) as pilot:
        view, table = await _open_models(pilot)
        _select(table, runs["forgetful"].id)
        await pilot.press("p")
        await settle(pilot)
        assert not isinstance(app.screen, (ConfirmScreen, PromoteScreen))
        assert aliases.current(get_engine(), "routing", "production") is None
        shown = [n.message for n in app._notifications]
        assert any("gate(s) failed" in m and "general" in m for m in shown)
