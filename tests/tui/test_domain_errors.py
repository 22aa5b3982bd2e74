"""Expected domain failures (evaluation, promotion, migration) raised by the real
use-cases inside TUI workers show their own message under a title that says what failed,
never "Unexpected error" (which is kept for bugs)."""

from __future__ import annotations

import pytest
from textual import work
from textual.widgets import Static

from app.database import get_engine
from app.tui.app import create_app
from app.tui.errors import ErrorScreen
from app.tui.screens.evaluate import EvaluateScreen, JobChoice
from db.engine import write_session
from db.models import Job
from tests.tui.helpers import FIXED_NOW, add_dataset, settle


class _UseCase(Static):
    """Runs one real use-case call in a worker, as the TUI's views do."""

    @work(thread=True, exit_on_error=False, group="test")
    def call(self, use_case) -> None:
        use_case()


def _notes(app) -> list[tuple[str, str, str]]:
    return [(n.title or "", n.message, n.severity) for n in app._notifications]


def _assert_shown(app, title: str, message: str) -> None:
    notes = _notes(app)
    assert not isinstance(app.screen, ErrorScreen), app.screen
    assert not any("Unexpected error" in t for t, _, _ in notes), notes
    assert any(title in t and message in m and s == "error" for t, m, s in notes), notes


def _rollback_with_no_history():
    from app.promotion.aliases import rollback

    rollback(get_engine(), task="routing", alias="production")


def _promote_a_missing_run():
    from app.promotion.promote import promote_run

    promote_run(get_engine(), task="routing", alias="production", run_id=4242)


def _migrate_a_missing_alias():
    from app.promotion.migrate import MigrationRequest, migrate_alias

    migrate_alias(
        get_engine(),
        MigrationRequest(task="routing", alias="production", to_provider="local", base_model="m"),
    )


def _database_gone_while_running():
    from app.database import DatabaseUnusable

    raise DatabaseUnusable("the database sqlite:////x/ftm.db is not an SQLite database")


def _rerun_a_missing_eval():
    from app.evaluation.runner import rerun_eval
    from tests.evaluation.helpers import EchoLabelProvider

    rerun_eval(4242, provider=EchoLabelProvider(), engine=get_engine())


@pytest.mark.parametrize(
    ("use_case", "title", "message"),
    [
        (
            _rollback_with_no_history,
            "Promotion refused",
            "task 'routing' has no alias 'production'; nothing to roll back",
        ),
        (_promote_a_missing_run, "Promotion refused", "no eval run with id 4242"),
        (
            _migrate_a_missing_alias,
            "Migration failed",
            "task 'routing' has no alias 'production' to migrate",
        ),
        (_rerun_a_missing_eval, "Evaluation failed", "no eval run with id 4242"),
        (_database_gone_while_running, "Environment", "is not an SQLite database"),
    ],
)
@pytest.mark.expects_tui_error
async def test_a_domain_error_in_a_worker_shows_its_message(use_case, title, message):
    app = create_app(start_poller=False)
    async with app.run_test(size=(100, 30)) as pilot:
        widget = _UseCase("x")
        await app.query_one("#datasets-view").mount(widget)
        widget.call(use_case)
        await settle(pilot)
        _assert_shown(app, title, message)
        await pilot.press("d")
        assert app.is_running


@pytest.mark.expects_tui_error
async def test_an_evaluation_that_fails_in_the_evaluate_screen_says_why(sandbox, ftm_home):
    # A job whose model the service does not know: the evaluate screen's real run fails
    # with EvalError (the provider's 404), shown as such; the screen stays usable.
    dataset_id = add_dataset(ftm_home, "tickets")
    model = "ft:gpt-4o-mini-2024-07-18:org::gone"
    with write_session(get_engine()) as session:
        job = Job(
            name="gone",
            provider="openai",
            base_model="gpt-4o-mini-2024-07-18",
            method="supervised",
            status="succeeded",
            remote_id="ftjob-gone",
            fine_tuned_model=model,
            dataset_id=dataset_id,
            created_at=FIXED_NOW,
            simulated=True,
        )
        session.add(job)
        session.flush()
        job_id = job.id
    app = create_app(start_poller=False)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = EvaluateScreen(job_id)
        await app.push_screen(screen)
        await settle(pilot)
        choice = JobChoice(
            id=job_id,
            name="gone",
            provider="openai",
            base_model="gpt-4o-mini-2024-07-18",
            fine_tuned_model=model,
            dataset_id=dataset_id,
            dataset_name="tickets",
            n_validation=4,
            simulated=True,
        )
        screen.run_evaluation(choice, "routing", 0, 2, False, False)
        for _ in range(40):
            await pilot.pause(0.1)
            if _notes(app):
                break
        await settle(pilot)
        _assert_shown(app, "Evaluation failed", model)
        assert app.screen is screen
        assert "evaluation failed" in str(screen.query_one("#eval-progress").render())
