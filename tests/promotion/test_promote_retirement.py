"""The promote dialog states when the candidate stops serving, from the lifecycle
service: a model tuned on gpt-4o-mini-2024-07-18 retires with it on 2027-01-14."""

from __future__ import annotations

from app.database import get_engine
from app.tui.app import create_app
from app.tui.screens.promote import PromoteScreen
from db.engine import write_session
from db.models import EvalRun, Job
from tests.tui.test_job_actions import _evaluated_job, _open_detail, _until

TUNED = "ft:gpt-4o-mini-2024-07-18:acme:routing:abc123"


def _as_openai_fine_tune(job_id: int) -> None:
    """Relabel the evaluated echo model as an OpenAI fine-tune (the gates look at scores)."""
    from sqlmodel import select

    with write_session(get_engine()) as session:
        session.get(Job, job_id).fine_tuned_model = TUNED
        run = session.exec(select(EvalRun).where(EvalRun.job_id == job_id)).one()
        run.provider, run.model = "openai", TUNED


async def test_the_promote_dialog_shows_the_candidates_retirement(monkeypatch):
    monkeypatch.setenv("FTM_TODAY", "2026-12-01")
    job_id = _evaluated_job("good")
    _as_openai_fine_tune(job_id)
    app = create_app(start_poller=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_detail(pilot, job_id)
        await pilot.press("o")
        await _until(pilot, lambda: isinstance(app.screen, PromoteScreen), what="the dialog")
        shown = " ".join(str(app.screen.query_one("#promote-retirement").render()).split())
        assert shown.startswith(
            "Retires on 2027-01-14: gpt-4o-mini-2024-07-18 retires on 2027-01-14 (44 days left)"
        )
        assert TUNED in shown and "ftm migrate" in shown


async def test_a_candidate_without_a_retirement_says_so():
    job_id = _evaluated_job("good")  # an echo-provider model: nothing announced
    app = create_app(start_poller=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_detail(pilot, job_id)
        await pilot.press("o")
        await _until(pilot, lambda: isinstance(app.screen, PromoteScreen), what="the dialog")
        shown = str(app.screen.query_one("#promote-retirement").render())
        assert shown == "Retirement: none announced for good"
