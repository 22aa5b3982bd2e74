"""The CLI's lists at 80 columns and in pipes: `ftm jobs list`, `ftm data list`,
`ftm compare` and `ftm estimate`, on a real database filled through the real sandbox
(long fine-tuned model ids, a long dataset name), through the real entry point.

Every line fits, every row is one line (cut with an ellipsis where needed), a pipe gets
no colour codes, and `--json` keeps the full values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.text import Text

from app import database
from app.cli.main import cli
from app.cli.tables import Column, fit, layout, render_lines
from tests.conftest import REPO_ROOT

DATASET = "customer-support-tickets-2026-q3-deduplicated-v2"
TASK = "support-ticket-routing"
SUFFIX = "support-router-v2"
WIDTH = 80


@pytest.fixture(scope="module")
def seeded_home(tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None) -> Path:
    """A home with a dataset, a finished and a running sandbox job (the running one
    fine-tunes the first's ft: model further), three eval runs and a promoted alias."""
    from app.datasets.store import add_dataset
    from app.evaluation.service import EvalRequest, evaluate
    from app.jobs.launch import launch_job
    from app.promotion import aliases
    from app.sandbox.server import SandboxServer
    from tests.evaluation.sandbox_fixtures import BASE, ticket_rows, train, write_jsonl

    root = tmp_path_factory.mktemp("cli-tables")
    home = root / "home"
    with pytest.MonkeyPatch.context() as mp, SandboxServer(port=0, seconds_per_step=0.01) as sb:
        mp.setenv("FTM_HOME", str(home))
        if module_database_url:
            mp.setenv("FTM_DATABASE_URL", module_database_url)
        mp.setenv("FTM_OPENAI__SANDBOX", "true")
        mp.setenv("FTM_OPENAI__SANDBOX_URL", sb.base_url)
        database.reset()
        engine = database.get_engine()
        add_dataset(
            write_jsonl(root / "t.jsonl", ticket_rows()), name=DATASET, val_fraction=0.25, seed=1
        )
        add_dataset(
            write_jsonl(root / "r.jsonl", ticket_rows(corrupt=True)),
            name=f"{DATASET}-labels-rotated",
            val_fraction=0.25,
            seed=1,
        )
        job = train(engine, DATASET, SUFFIX)
        launch_job("openai", DATASET, job.fine_tuned_model, suffix="continued", engine=engine)
        runs = evaluate(
            EvalRequest(
                task=TASK,
                dataset=DATASET,
                provider="openai",
                base_model=BASE,
                few_shot=3,
                job_ids=[job.id],
                general=False,
                limit=8,
            ),
            engine=engine,
        )
        aliases.promote(
            engine,
            task=TASK,
            alias="production",
            run_id=runs[-1].id,
            who="ci",
            why="test",
            override=True,
        )
        database.reset()
    return home


@pytest.fixture
def home(
    seeded_home: Path, module_database_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv("FTM_HOME", str(seeded_home))
    if module_database_url:
        monkeypatch.setenv("FTM_DATABASE_URL", module_database_url)
    database.reset()
    return seeded_home


COMMANDS = {
    "jobs list": ("jobs", "list"),
    "data list": ("data", "list"),
    "compare": ("compare", "--task", TASK),
    "estimate": ("estimate", DATASET),
}


def _piped(*args: str, columns: str | None = None) -> str:
    """The command in a fresh process whose stdout is a pipe (COLUMNS unset unless given)."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns:
        env["COLUMNS"] = columns
    out = subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    return out.stdout


def _at_80(*args: str) -> str:
    result = CliRunner().invoke(
        cli, list(args), env={"COLUMNS": str(WIDTH)}, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def _rows(*args: str) -> list[dict]:
    """The command's rows as its --json gives them (the full values)."""
    data = json.loads(_at_80(*args, "--json"))
    return data["options"] if args[0] == "estimate" else data


def _first_cell(command: str, row: dict) -> str:
    """What a row's line starts with: its id, or the start of the option's label."""
    if command == "compare":
        return str(row["run_id"])
    if command == "estimate":
        return row["label"][:12]
    return str(row["id"])


def _body(text: str, n_rows: int) -> list[str]:
    """The n lines after the table's header rule."""
    lines = text.splitlines()
    rule = next(i for i, line in enumerate(lines) if line and set(line) <= {"-", " "})
    return lines[rule + 1 : rule + 1 + n_rows]


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("how", ["COLUMNS=80", "piped"])
def test_each_row_is_one_line_within_80_columns(home, command, how):
    args = COMMANDS[command]
    text = _at_80(*args) if how == "COLUMNS=80" else _piped(*args)
    lines = text.splitlines()
    too_wide = [line for line in lines if len(line) > WIDTH]
    assert not too_wide, "\n".join(too_wide)
    assert "\x1b[" not in text  # no colour codes in a pipe
    rows = _rows(*args)
    assert len(rows) >= 2
    body = _body(text, len(rows))
    # one line per row: the n lines after the rule are the n rows, in order
    for line, row in zip(body, rows, strict=True):
        first = _first_cell(command, row)
        assert line.lstrip(" *").startswith(first), (first, body)
    after = text.splitlines()[text.splitlines().index(body[-1]) + 1 :]
    if after:  # what follows the rows is a note or prose, not the rest of a row
        assert not after[0].startswith(" " * 4), after[0]


def test_long_values_are_cut_in_the_table_and_whole_in_json(home):
    board = _at_80(*COMMANDS["compare"])
    ft_model = next(r["model"] for r in _rows(*COMMANDS["compare"]) if r["kind"] == "fine_tuned")
    assert ft_model.startswith("ft:gpt-4o-mini-2024-07-18:") and SUFFIX in ft_model
    assert ft_model not in board
    # cut in the middle: the family and the distinguishing tail both stay
    line = next(line for line in board.splitlines() if "…" in line and "ft:gpt" in line)
    assert ft_model[-8:] in line and "ft:gpt-4o-mini" in line

    datasets = _at_80(*COMMANDS["data list"])
    assert DATASET not in datasets and DATASET[:10] in datasets and DATASET[-6:] in datasets
    names = [d["name"] for d in _rows(*COMMANDS["data list"])]
    assert sorted(names) == [DATASET, f"{DATASET}-labels-rotated"]

    jobs = _rows(*COMMANDS["jobs list"])
    assert any(j["base_model"] == ft_model for j in jobs)
    assert ft_model not in _at_80(*COMMANDS["jobs list"])


def test_a_wide_terminal_shows_every_column_whole(home):
    board = _piped(*COMMANDS["compare"], columns="200")
    ft_model = next(r["model"] for r in _rows(*COMMANDS["compare"]) if r["kind"] == "fine_tuned")
    assert ft_model in board and "…" not in board and "left out" not in board
    for header in ("kind", "provider", "alias", "format", "general", "forget", "break-even"):
        assert header in board.splitlines()[1]
    assert "production" in board


def test_narrow_output_names_the_columns_it_left_out(home):
    jobs = _at_80(*COMMANDS["jobs list"])
    assert "(left out at 80 columns: name, remote id; --json has all)" in jobs
    assert "openai (simulated)" in jobs  # the provider is never cut


# The renderer itself


COLUMNS = [
    Column("id", align="right"),
    Column("name", priority=2, min_width=8),
    Column("model", min_width=12, cut="middle"),
    Column("note", priority=1, min_width=6),
]
ROWS = [["1", "a-rather-long-job-name", "ft:gpt-4o-mini-2024-07-18:org:suffix:abc123", "ok"]]


def test_columns_shrink_before_any_is_left_out():
    plan = layout(COLUMNS, ROWS, width=40)
    assert [COLUMNS[i].header for i in plan.shown] == ["id", "name", "model", "note"]
    assert sum(plan.widths.values()) + 2 * 3 == 40


def test_least_important_columns_go_first_and_priority_zero_never():
    assert layout(COLUMNS, ROWS, width=30).hidden == ["name"]
    assert layout(COLUMNS, ROWS, width=20).hidden == ["name", "note"]
    tiny = layout(COLUMNS, ROWS, width=5)
    assert tiny.hidden == ["name", "note"]  # id and model stay, squeezed to fit
    assert sum(tiny.widths.values()) + 2 == 5
    assert all(len(line.plain) <= 5 for line in render_lines(COLUMNS, ROWS, width=5))


def test_a_cut_keeps_its_width_and_shows_it_was_cut():
    model = ROWS[0][2]
    middle = fit(model, 20, "middle").plain
    assert len(middle) == 20 and middle.startswith("ft:gpt-4o") and middle.endswith("abc123")
    assert "…" in middle
    end = fit(model, 20).plain
    assert len(end) == 20 and end.endswith("…") and end.startswith("ft:gpt-4o-mini")
    assert fit("short", 20).plain == "short"


def test_colour_only_at_a_terminal():
    cells = [[*ROWS[0][:3], Text("failed", style="red")]]
    plain = render_lines(COLUMNS, cells, width=80)
    coloured = render_lines(COLUMNS, cells, width=80, color=True)
    assert [line.plain.replace("─", "-") for line in coloured] == [line.plain for line in plain]
    assert not any(line.spans for line in plain)
    assert any(span.style == "red" for line in coloured for span in line.spans)


@pytest.mark.parametrize("how", ["COLUMNS=80", "piped"])
def test_prices_fit_80_columns_with_model_ids_whole(how):
    text = _at_80("prices") if how == "COLUMNS=80" else _piped("prices")
    assert all(len(line) <= WIDTH for line in text.splitlines())
    catalog = json.loads(_at_80("prices", "--json"))
    lines = text.splitlines()
    models = [m for table in catalog["providers"].values() for m in table["models"]]
    assert models
    for model in models:
        assert any(line.startswith(f"{model} ") for line in lines), model
    for key in catalog["gpus"]:
        assert sum(line.startswith(f"{key} ") for line in lines) == 1, key
