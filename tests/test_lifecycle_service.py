"""One lifecycle service answers "when does X stop accepting jobs / stop serving" for every
caller: change a date where the provider declares it and every caller changes with it.

The OpenAI provider's declaration is swapped for one read from an edited copy of its
lifecycle.toml (gpt-4o-mini retires 2026-12-20 instead of 2027-01-14; job creation ends
2026-12-10 instead of 2027-01-06), and each caller is asked on 2026-12-01.
"""

from __future__ import annotations

from datetime import date

import pytest

from app import lifecycle
from providers.openai import OpenAIProvider
from providers.openai.lifecycle import LIFECYCLE_FILE, load_lifecycle
from providers.types import JobSpec
from tests.costs.conftest import chat_examples, store_dataset

TODAY = date(2026, 12, 1)
MINI = "gpt-4o-mini-2024-07-18"
TUNED = f"ft:{MINI}:org:route:abc123"


@pytest.fixture
def moved_dates(tmp_path, monkeypatch):
    text = LIFECYCLE_FILE.read_text()
    mini = text.index(f'id = "{MINI}"')
    edited = text[:mini] + text[mini:].replace(
        'retires = "2027-01-14"', 'retires = "2026-12-20"', 1
    )
    edited = edited.replace(
        'job_creation_cutoff = "2027-01-06"', 'job_creation_cutoff = "2026-12-10"'
    )
    path = tmp_path / "lifecycle.toml"
    path.write_text(edited)
    monkeypatch.setattr(OpenAIProvider, "lifecycle", classmethod(lambda cls: load_lifecycle(path)))
    monkeypatch.setenv("FTM_TODAY", TODAY.isoformat())


def test_the_service_itself(moved_dates):
    assert lifecycle.retirement("openai", TUNED).retires == date(2026, 12, 20)
    assert lifecycle.retirement("openai", "gpt-4o-mini").base_model == MINI  # alias resolved
    assert lifecycle.creation_cutoff("openai").last_day == date(2026, 12, 10)
    assert lifecycle.retirement("local", "meta-llama/Llama-3.1-8B") is None
    assert lifecycle.creation_cutoff("local") is None
    assert lifecycle.is_retired("openai", MINI, date(2026, 12, 20))
    assert not lifecycle.is_retired("openai", MINI, date(2026, 12, 19))


def test_launch_plan_warnings(moved_dates):
    from app.jobs.launch import launch_warnings

    warnings = launch_warnings(OpenAIProvider(), JobSpec(name="x", base_model=MINI, train_path=""))
    assert "OpenAI accepts new fine-tuning jobs until 2026-12-10 (9 days left)" in warnings
    assert any(w.startswith(f"{MINI} retires on 2026-12-20 (19 days left)") for w in warnings)


def test_wizard_base_model_warning_and_retired_check(moved_dates, monkeypatch):
    from app.tui.screens.launch_form import is_retired, sunset_warning

    info = next(m for m in OpenAIProvider().list_base_models() if m.id == MINI)
    assert sunset_warning(info).startswith(f"{MINI} retires on 2026-12-20 (19 days left)")
    assert not is_retired(info)
    monkeypatch.setenv("FTM_TODAY", "2026-12-20")
    assert is_retired(info)


def test_estimate_and_launch_preview(moved_dates, ftm_home):
    from app.costs.compare import compare
    from app.costs.launch import estimate_for_launch
    from app.database import get_engine
    from db.engine import read_session

    ds = store_dataset(ftm_home, "tickets", chat_examples(40))
    with read_session(get_engine()) as s:
        hosted = compare(s, ds, provider="openai").option(f"hosted:{MINI}")
    assert hosted.serving["serves_until"] == "2026-12-20" and hosted.stops_at_month == 1
    assert "OpenAI accepts new fine-tuning jobs until 2026-12-10 (9 days left)" in hosted.warnings
    preview = estimate_for_launch(dataset_id=ds.id, provider="openai", base_model=MINI)
    assert preview.serving == hosted.serving


def test_promotion_sunsets_models_view_and_migration(moved_dates):
    # `ftm models list/show`, the Models tab and `ftm migrate` all read these two.
    from app.promotion import sunsets

    sunset = sunsets.sunset_of("openai", TUNED)
    assert (sunset.retires, sunset.days_left) == (date(2026, 12, 20), 19)
    assert "retires on 2026-12-20 (19 days left)" in sunset.message
    assert sunsets.job_creation_cutoff("openai").last_day == date(2026, 12, 10)
    assert sunsets.sunset_of("local", "/models/adapter") is None


def test_the_price_catalog_listing(moved_dates):
    from click.testing import CliRunner

    from app.cli.costs import prices

    out = CliRunner().invoke(prices, [], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "OpenAI accepts new fine-tuning jobs until 2026-12-10 (9 days left)" in out.output
    row = next(line for line in out.output.splitlines() if MINI in line)
    assert "2026-12-20" in row


def test_a_bad_fixed_date_is_one_line_not_a_traceback(ftm_home):
    from tests.costs.test_cli import ftm

    out = ftm("prices", env={"FTM_TODAY": "2026-13-01"})
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip() == (
        "error: FTM_TODAY='2026-13-01' is not a date; use YYYY-MM-DD (e.g. 2026-12-01) or unset it"
    )
