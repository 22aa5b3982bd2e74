"""Models view: a leaderboard per task with the alias holders marked, the highlighted
eval's details, and promote / roll back from the keyboard behind a confirmation; ``l``
opens the migration plan (`app.tui.screens.migration_plan`).

Everything that touches the database runs in thread workers that post messages back; the
promotion itself goes through the same use-case as `ftm promote` (gates included).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from app.costs.money import usd
from app.database import get_engine
from app.tui.screens.promote import DEFAULT_WHY
from app.tui.views import unless_torn_down


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


@dataclass
class BoardRow:
    task: str
    row: object  # app.evaluation.compare.Row
    aliases: list[str]


@dataclass
class Board:
    rows: list[BoardRow] = field(default_factory=list)
    holders: list[str] = field(default_factory=list)
    """One line per alias: task/alias -> model, with its sunset warning."""
    details: dict[int, str] = field(default_factory=dict)
    """Eval details per run id."""


def load_board() -> Board:
    """Every task's leaderboard, alias holders and eval details (runs in a thread)."""
    from app.evaluation.compare import leaderboard, tasks
    from app.gateway.policy import views
    from app.gateway.shadow import figures as shadow_figures
    from app.promotion.aliases import holders
    from app.promotion.sunsets import sunset_of
    from db.engine import read_session
    from db.models import EvalRun

    engine = get_engine()
    board = Board()
    held: dict[tuple, list[str]] = {}
    for h in holders(engine):
        p = h.promotion
        held.setdefault((h.alias.task, p.provider, p.model), []).append(h.alias.alias)
        sunset = sunset_of(p.provider, p.model, p.base_model)
        board.holders.append(
            f"{h.alias.task}/{h.alias.alias} → {p.model} [{p.provider}, {p.model_kind}]"
            + (" (override)" if p.overridden else "")
            + (f"  ⚠ {sunset.message}" if sunset else "")
        )
    # Canary and shadow policies, with what they have served (the gateway's request log).
    board.holders += [
        f"{v.task}/{v.alias} traffic: {v.summary()}"
        for v in views(engine)
        if v.active or v.canary_requests or v.shadow_pairs
    ]
    shadowed = {}
    for task in tasks(engine):
        shadowed.update({(task, *key): f for key, f in shadow_figures(engine, task).items()})
        for row in leaderboard(engine, task):
            board.rows.append(BoardRow(task, row, held.get((task, row.provider, row.model), [])))
    with read_session(engine) as session:
        for br in board.rows:
            run = session.get(EvalRun, br.row.run_id)
            board.details[br.row.run_id] = _details(run, br.row)
            found = shadowed.get((br.task, br.row.provider, br.row.model))
            if found:
                board.details[br.row.run_id] += f"\nshadow: {found.summary()}"
    return board


def _details(run, row) -> str:
    summary = run.summary or {}
    task = summary.get("task") or {}
    lines = [
        f"run {run.id} · {row.label} · {run.provider} · {task.get('n', 0)} examples · "
        f"{summary.get('calls', 0)} calls, {summary.get('cached', 0)} cached",
        "scores: " + ", ".join(f"{k} {_pct(v)}" for k, v in (task.get("scores") or {}).items()),
    ]
    if summary.get("general"):
        lines.append(
            f"general ability {_pct(summary['general'].get('score'))}"
            + (
                f", forgetting {row.forgetting_delta * 100:+.1f} pts"
                if row.forgetting_delta is not None
                else ""
            )
        )
    if row.cost_per_1k_usd is not None:
        lines.append(
            f"cost {usd(row.cost_per_1k_usd)} per 1,000 requests"
            + (
                f", break-even after {row.breakeven_requests:,.0f} requests"
                if row.breakeven_requests is not None
                else ""
            )
        )
    confusion = task.get("confusion")
    if confusion:
        worst = sorted(
            ((sum(v for p, v in r.items() if p != e), e) for e, r in confusion.items()),
            reverse=True,
        )[0]
        if worst[0]:
            lines.append(f"most confused label: {worst[1]} ({worst[0]} wrong)")
    lines += [f"note: {n}" for n in row.notes]
    return "\n".join(lines)


class ModelsView(Vertical):
    """The Models tab."""

    BINDINGS = [
        Binding("p", "promote('production')", "Promote", id="models.promote"),
        Binding("s", "promote('staging')", "Stage", id="models.stage"),
        Binding("b", "rollback('production')", "Roll back", id="models.rollback"),
        Binding("r", "reload", "Refresh", id="models.reload"),
        Binding("l", "migration_plan", "Migration plan", id="models.plan"),
    ]
    DEFAULT_CSS = """
    ModelsView #models-table { height: 1fr; }
    ModelsView #models-details { height: auto; max-height: 10; padding: 0 1;
                                 border-top: solid $primary; }
    ModelsView #models-holders { height: auto; padding: 0 1; color: $text-muted; }
    """

    @dataclass
    class Loaded(Message):
        board: Board

    @dataclass
    class Promoted(Message):
        """An alias changed (or a change was refused: ``error`` says why)."""

        text: str
        error: bool = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.board = Board()

    def compose(self) -> ComposeResult:
        yield DataTable(id="models-table", cursor_type="row", zebra_stripes=True)
        yield Static(
            "No evaluations yet. Run: ftm eval --task TASK --dataset NAME ...",
            id="models-empty",
            classes="empty-hint",
        )
        yield Static("", id="models-details")
        yield Static("", id="models-holders")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(
            "task",
            "run",
            "candidate",
            "kind",
            "alias",
            "quality",
            "format",
            "general",
            "forget",
            "$/1k req",
        )
        self.action_reload()

    # -- loading ------------------------------------------------------------------------

    def action_reload(self) -> None:
        self.load()

    def on_show(self) -> None:
        # Evals and promotions happen from the CLI too: reload whenever the tab is shown.
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="models")
    def load(self) -> None:
        self.post_message(self.Loaded(load_board()))

    @on(Loaded)
    @unless_torn_down
    def _show(self, message: Loaded) -> None:
        self.board = message.board
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        for br in message.board.rows:
            r = br.row
            table.add_row(
                br.task,
                str(r.run_id),
                r.label,
                r.kind,
                "★ " + ", ".join(br.aliases) if br.aliases else "",
                _pct(r.quality),
                _pct(r.format),
                _pct(r.general),
                "-" if r.forgetting_delta is None else f"{r.forgetting_delta * 100:+.1f}",
                usd(r.cost_per_1k_usd),
                key=str(r.run_id),
            )
        if message.board.rows:
            table.move_cursor(row=min(max(cursor, 0), len(message.board.rows) - 1))
        self.query_one("#models-empty").display = not message.board.rows
        self.query_one("#models-holders").update("\n".join(message.board.holders))
        self._show_details()

    @on(DataTable.RowHighlighted)
    def _show_details(self, _event=None) -> None:
        selected = self.selected()
        text = self.board.details.get(selected.row.run_id, "") if selected else ""
        self.query_one("#models-details").update(text)

    def selected(self) -> BoardRow | None:
        table = self.query_one(DataTable)
        if not self.board.rows or table.cursor_row is None:
            return None
        index = table.cursor_row
        return self.board.rows[index] if 0 <= index < len(self.board.rows) else None

    def action_migration_plan(self) -> None:
        from app.tui.screens.migration_plan import MigrationPlanScreen

        self.app.push_screen(MigrationPlanScreen())

    # -- promote / roll back ------------------------------------------------------------

    def action_promote(self, alias: str) -> None:
        selected = self.selected()
        if selected is None:
            self.notify("Nothing to promote: evaluate a model first.", severity="warning")
            return
        if selected.row.kind not in ("fine_tuned", "checkpoint"):
            self.notify(
                f"{selected.row.label} is a baseline, not a trained model.", severity="warning"
            )
            return
        self.check_then_confirm(
            selected.task,
            alias,
            selected.row.run_id,
            selected.row.label,
            selected.row.provider,
            selected.row.model,
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="models-gates")
    def check_then_confirm(
        self, task: str, alias: str, run_id: int, label: str, provider: str = "", model: str = ""
    ) -> None:
        from app.promotion.gates import check_gates

        report = check_gates(get_engine(), run_id)
        retirement = retirement_line(provider, model) if model else None
        self.app.call_from_thread(
            self._confirm_promotion, task, alias, run_id, label, report, retirement
        )

    def _confirm_promotion(self, task, alias, run_id, label, report, retirement=None) -> None:
        """Refuse with the failed gates, or ask where to promote and why."""
        from app.tui.screens.promote import PromoteAnswer, PromoteScreen

        lines = "\n".join(
            f"{'✓' if g.passed else '✗'} {g.name}: {g.detail}" for g in report.results
        )
        if not report.passed:
            self.notify(
                f"Promotion refused, gate(s) failed:\n{lines}\n"
                "(override from the CLI: ftm promote --override --why ...)",
                severity="error",
                timeout=10,
            )
            return

        def answered(answer: PromoteAnswer | None) -> None:
            if answer is not None:
                self.promote(task, answer.alias, run_id, answer.why)

        self.app.push_screen(
            PromoteScreen(f"Promote {label}?", task, alias, lines, retirement=retirement), answered
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="models-write")
    def promote(self, task: str, alias: str, run_id: int, why: str = DEFAULT_WHY) -> None:
        from app.promotion.aliases import PromotionError
        from app.promotion.promote import promote_run

        try:
            row, _ = promote_run(
                get_engine(),
                task=task,
                alias=alias,
                run_id=run_id,
                why=why,
            )
        except PromotionError as exc:
            self.post_message(self.Promoted(str(exc), error=True))
            return
        self.post_message(self.Promoted(f"{task}/{alias} → {row.model}"))

    def action_rollback(self, alias: str) -> None:
        from app.tui.screens.confirm import ConfirmScreen

        selected = self.selected()
        if selected is None:
            return
        task = selected.task

        def answered(yes: bool | None) -> None:
            if yes:
                self.rollback(task, alias)

        self.app.push_screen(
            ConfirmScreen(
                f"Roll back {task}/{alias} to its previous holder?",
                "The change is recorded in the alias history.",
                confirm_label="Roll back",
                destructive=True,
            ),
            answered,
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="models-write")
    def rollback(self, task: str, alias: str) -> None:
        from app.promotion.aliases import PromotionError, rollback

        try:
            row = rollback(
                get_engine(),
                task=task,
                alias=alias,
                why="rolled back from the TUI",
            )
        except PromotionError as exc:
            self.post_message(self.Promoted(str(exc), error=True))
            return
        self.post_message(self.Promoted(f"{task}/{alias} rolled back to {row.model}"))

    @on(Promoted)
    def _promoted(self, message: Promoted) -> None:
        self.notify(message.text, severity="error" if message.error else "information", timeout=8)
        self.load()


def retirement_line(provider: str, model: str) -> str:
    """The candidate's retirement, for the promote dialog (from the lifecycle service)."""
    from app.promotion.sunsets import sunset_of

    sunset = sunset_of(provider, model)
    if sunset is None:
        return f"Retirement: none announced for {model}"
    return f"Retires on {sunset.retires.isoformat()}: {sunset.message}"
