"""Costs view: every option for a dataset and a level of traffic, side by side, and the
cumulative cost of each against requests; where the lines cross are the break-evens.

The comparison runs in a worker thread (it reads token counts and tokenizes a sample of
the dataset); the worker posts `Computed` or `Failed`, and the handlers update widgets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, DataTable, Input, Label, Select, Static
from textual_plotext import PlotextPlot

from app.costs.money import usd
from app.database import get_engine
from app.tui.views import unless_torn_down
from db.engine import read_session

METHODS = [
    ("QLoRA", "qlora"),
    ("LoRA", "lora"),
    ("DoRA", "dora"),
    ("IA3", "ia3"),
    ("prefix", "prefix"),
    ("full", "full"),
]


def _usd(value: float | None) -> str:
    return usd(value)


COLUMNS = ("option", "one-time", "per 1k req", "monthly", "horizon", "break-even")


def _fill_table(table: DataTable, rows: list[tuple[str, tuple[str, ...]]]) -> None:
    """Show ``rows`` (key, cells) with each column as wide as its widest cell.

    The widths are set up front: left to the DataTable, they are measured when it next
    idles, and a paint in between once left the header at the old widths.
    """
    table.clear(columns=True)
    for i, label in enumerate(COLUMNS):
        width = max([cell_len(label)] + [cell_len(cells[i]) for _, cells in rows])
        table.add_column(label, width=width, key=label)
    for key, cells in rows:
        table.add_row(*cells, key=key)


@dataclass(frozen=True)
class CostQuery:
    """What the user asked to price."""

    dataset: str
    requests_per_month: float | None
    """The user's figure (a what-if); None: measured traffic, else the default."""
    horizon_months: float
    local_model: str
    method: str


def _alias_line(cost) -> str:
    """One alias's money this month (`app.costs.alias_costs.AliasCost`)."""
    be = cost.break_even
    pays = (
        f"break-even {be.requests:,.0f} req"
        if be is not None and be.requests is not None
        else "no break-even"
    )
    return (
        f"This month {cost.name}: {cost.requests:,} req, {_usd(cost.total_usd)} (tokens "
        f"{_usd(cost.token_usd)} + hours {_usd(cost.deployment_usd)}), "
        f"{_usd(cost.per_1k_usd)}/1k req, {pays}."
    )


class CostsView(Vertical):
    """The Costs tab."""

    DEFAULT_CSS = """
    CostsView { height: 1fr; }
    CostsView #costs-controls { height: auto; padding: 0 1; }
    CostsView #costs-controls Select { width: 24; }
    CostsView #costs-controls Input { width: 12; }
    CostsView #costs-controls Label { padding: 1 1 0 1; }
    CostsView #costs-table { height: auto; max-height: 10; }
    CostsView #costs-detail { height: auto; padding: 0 1; color: $text-muted; }
    CostsView #costs-error { color: $error; padding: 0 1; }
    CostsView #costs-plot { height: 1fr; min-height: 12; }
    """

    @dataclass
    class DatasetsLoaded(Message):
        names: list[str]
        local_models: list[str]

    @dataclass
    class Computed(Message):
        query: CostQuery
        result: Any
        """An `app.costs.compare.Comparison`."""
        aliases: Any = None
        """`app.costs.alias_costs.AliasCost` of each alias of the dataset's tasks this
        month."""

    @dataclass
    class Failed(Message):
        query: CostQuery
        error: str

    def compose(self) -> ComposeResult:
        with Horizontal(id="costs-controls"):
            yield Select([], prompt="dataset", id="costs-dataset", allow_blank=True)
            yield Label("requests/month")
            yield Input(placeholder="measured", id="costs-rpm", type="number")
            yield Label("months")
            yield Input("12", id="costs-horizon", type="number")
            yield Select([], prompt="local model", id="costs-model", allow_blank=True)
            yield Select(METHODS, value="qlora", id="costs-method", allow_blank=False)
            yield Button("Estimate", id="costs-run", variant="primary")
        yield Static("", id="costs-error")
        yield DataTable(id="costs-table", cursor_type="row", zebra_stripes=True)
        yield Static("Choose a dataset and the expected traffic.", id="costs-detail")
        yield PlotextPlot(id="costs-plot")

    _shown = False
    """Whether the tab has been shown: estimating waits for it (no work at app start)."""

    def on_show(self) -> None:
        if not self._shown:
            self._shown = True
            self._request_estimate()

    def on_mount(self) -> None:
        _fill_table(self.query_one(DataTable), [])
        self.load_choices()

    # -- loading ------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="costs-choices")
    def load_choices(self) -> None:
        from sqlmodel import select

        from app.costs.compare import DEFAULT_LOCAL_MODEL
        from app.costs.model_shapes import known_model_names
        from db.models import Dataset

        with read_session(get_engine()) as session:
            names = list(
                dict.fromkeys(
                    session.exec(select(Dataset.name).order_by(Dataset.created_at.desc())).all()
                )
            )
        models = [DEFAULT_LOCAL_MODEL] + [
            m for m in known_model_names() if m != DEFAULT_LOCAL_MODEL
        ]
        self.post_message(self.DatasetsLoaded(names, models))

    @on(DatasetsLoaded)
    @unless_torn_down
    def _show_choices(self, message: DatasetsLoaded) -> None:
        datasets = self.query_one("#costs-dataset", Select)
        datasets.set_options([(n, n) for n in message.names])
        models = self.query_one("#costs-model", Select)
        models.set_options([(m.split("/")[-1], m) for m in message.local_models])
        models.value = message.local_models[0]
        if message.names:
            datasets.value = message.names[0]  # the newest; triggers an estimate

    # -- estimating ---------------------------------------------------------------------

    def current_query(self) -> CostQuery | None:
        dataset = self.query_one("#costs-dataset", Select).value
        if dataset in (Select.NULL, None):
            return None
        model = self.query_one("#costs-model", Select).value
        try:
            typed = self.query_one("#costs-rpm", Input).value.strip()
            rpm = float(typed) if typed else None
            horizon = float(self.query_one("#costs-horizon", Input).value)
        except ValueError:
            self.query_one("#costs-error", Static).update(
                "requests/month and months must be numbers"
            )
            return None
        return CostQuery(
            str(dataset),
            rpm,
            horizon,
            "" if model in (Select.NULL, None) else str(model),
            str(self.query_one("#costs-method", Select).value),
        )

    @on(Select.Changed)
    @on(Button.Pressed, "#costs-run")
    @on(Input.Submitted)
    def _request_estimate(self) -> None:
        if not self._shown:
            return
        query = self.current_query()
        if query is not None:
            self.estimate(query)

    @work(thread=True, exclusive=True, exit_on_error=False, group="costs")
    def estimate(self, query: CostQuery) -> None:
        from app.costs.compare import compare
        from app.costs.dataset_inputs import find_dataset
        from app.costs.errors import CostError
        from app.costs.local_memory import LocalTrainingConfig
        from app.costs.traffic import tasks_of_dataset, traffic_for

        engine = get_engine()
        try:
            with read_session(engine) as session:
                dataset = find_dataset(session, query.dataset)
                tasks = tasks_of_dataset(engine, dataset.id)
                traffic = traffic_for(engine, given=query.requests_per_month, task=tasks)
                result = compare(
                    session,
                    dataset,
                    local_models=[query.local_model] if query.local_model else None,
                    local_config=LocalTrainingConfig(method=query.method),
                    horizon_months=query.horizon_months,
                    traffic=traffic,
                )
        except CostError as e:
            self.post_message(self.Failed(query, str(e)))
            return
        from app.costs.alias_costs import alias_costs

        aliases = [a for t in tasks for a in alias_costs(engine, task=t).aliases]
        self.post_message(self.Computed(query, result, aliases))

    @on(Failed)
    @unless_torn_down
    def _show_failure(self, message: Failed) -> None:
        self.query_one("#costs-error", Static).update(f"error: {message.error}")

    @on(Computed)
    @unless_torn_down
    def _show(self, message: Computed) -> None:
        result = message.result
        self.query_one("#costs-error", Static).update("")
        rows = []
        for o in result.options:
            if o.kind == "baseline":
                be = "baseline"
            elif o.break_even_requests is None:
                be = "never"
            else:
                be = f"{o.break_even_requests:,.0f} req ({o.break_even_months:.1f} mo)"
            mark = "* " if o.key == result.cheapest else "  "
            horizon = _usd(o.horizon_usd) + o.stop_mark
            rows.append(
                (
                    o.key,
                    (
                        mark + o.label,
                        _usd(o.one_time_usd),
                        _usd(o.per_request_usd * 1000),
                        _usd(o.monthly_usd),
                        horizon,
                        be,
                    ),
                )
            )
        _fill_table(self.query_one(DataTable), rows)
        warnings = [f"{o.label}: {w}" for o in result.options for w in o.warnings]
        if result.stopping:
            warnings.append(f"(mN): stops serving in month N; {result.horizon_rule}.")
        p = result.profile
        from app.costs.traffic import Traffic

        self.query_one("#costs-detail", Static).update(
            f"{result.verdict()} {Traffic(**result.traffic).describe()} Baseline: "
            f"k={p['k']} examples ({p['k_reason']}); prompt {p['prompt_tokens']:.0f} tokens, reply "
            f"{p['output_tokens']:.0f}. Prices as of {result.catalog['as_of']} "
            f"({result.catalog['age_days']} days old).\n"
            + "\n".join(warnings + [_alias_line(a) for a in message.aliases or []])
        )
        self._plot(result)

    def _plot(self, result) -> None:
        requests, curves = result.curves(points=60)
        # Costs span orders of magnitude (an always-on GPU against cents per request), so
        # the y axis is logarithmic; it starts at the first request, not at zero.
        requests, curves = requests[1:], {k: v[1:] for k, v in curves.items()}
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        # plotext's own log scale transforms its stored data in place on every render, so
        # a second render (a resize) takes the log of a log and fails: plot log10 values
        # and label the decades instead.
        import math

        def log_usd(value: float) -> float:
            return math.log10(max(value, 1e-4))

        labels = {o.key: o.label for o in result.options}
        # A line ends where its model stops serving: no cost accrues after it, and no
        # saving either (the horizon rule of app.costs.compare).
        served = {
            o.key: o.serving.get("months_served", result.horizon_months) * result.requests_per_month
            for o in result.options
        }
        lows, highs = [], []
        for key, costs in curves.items():
            points = [
                (x, log_usd(c))
                for x, c in zip(requests.tolist(), costs.tolist(), strict=True)
                if x <= served[key]
            ]
            if not points:
                continue
            xs, ys = [x for x, _ in points], [y for _, y in points]
            lows.append(min(ys))
            highs.append(max(ys))
            plt.plot(xs, ys, label=labels[key][:40])
        if lows:
            decades = list(range(math.floor(min(lows)), math.ceil(max(highs)) + 1))
            plt.yticks(decades, [_usd(10.0**d) for d in decades])
        # The crossings with the baseline: the break-evens.
        xs = [
            o.break_even_requests
            for o in result.options
            if o.break_even_requests is not None
            and 0 < o.break_even_requests <= min(requests[-1], served[o.key])
        ]
        if xs:
            base = result.baseline.per_request_usd
            plt.scatter(xs, [log_usd(x * base) for x in xs], marker="x", label="break-even")
        plt.title(
            "Cumulative cost (USD, log scale) against requests; x marks a break-even; "
            "a line ends where its model stops serving"
        )
        plt.xlabel("requests")
        plot.refresh()
