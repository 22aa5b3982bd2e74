"""The service cutoff and base-model retirements come from ONE data file, declared by the
provider and answered by the lifecycle service (app.lifecycle)."""

from __future__ import annotations

from datetime import date

import pytest

from app.lifecycle import creation_warnings as service_warnings
from providers.openai import OpenAIProvider
from providers.openai.lifecycle import LIFECYCLE_FILE, load_lifecycle

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


def creation_warnings(model: str, today: date) -> list[str]:
    return service_warnings("openai", model, today)


def test_the_data_file_holds_the_cutoff_and_retirements():
    lc = load_lifecycle()
    assert LIFECYCLE_FILE.name == "lifecycle.toml"
    assert lc.job_creation_cutoff == date(2027, 1, 6)
    mini = lc.model("gpt-4o-mini-2024-07-18")
    assert mini is not None and mini.sunset == "2027-01-14"
    assert "dpo" in mini.methods


def test_base_models_come_from_the_file():
    models = {m.id: m for m in OpenAIProvider().list_base_models()}
    assert models["gpt-4.1-2025-04-14"].sunset == "2027-01-14"
    assert models["gpt-3.5-turbo-0125"].sunset is None


def test_no_warning_long_before_the_cutoff():
    assert creation_warnings("gpt-4.1-nano-2025-04-14", date(2026, 6, 1)) == []


def test_warns_near_the_cutoff_and_retirement():
    warnings = creation_warnings("gpt-4o-mini-2024-07-18", date(2026, 12, 20))
    assert any("until 2027-01-06 (17 days left)" in w for w in warnings)
    assert any("retires on 2027-01-14 (25 days left)" in w for w in warnings)


def test_after_the_cutoff_the_refusal_is_announced():
    warnings = creation_warnings("gpt-4o-mini-2024-07-18", date(2027, 1, 7))
    assert any("stopped accepting new fine-tuning jobs after 2027-01-06" in w for w in warnings)


def test_a_fine_tuned_model_inherits_its_base_models_retirement():
    warnings = creation_warnings("ft:gpt-4o-2024-08-06:org:x:abc12345", date(2027, 1, 20))
    assert any("gpt-4o-2024-08-06 was retired on 2027-01-14" in w for w in warnings)


def test_the_provider_declares_its_lifecycle_and_its_wind_down_stages():
    declared = OpenAIProvider.lifecycle()
    assert declared.retirements["gpt-4o-mini-2024-07-18"] == date(2027, 1, 14)
    assert declared.base_model("gpt-4o-mini") == "gpt-4o-mini-2024-07-18"
    assert declared.base_model("ft:gpt-4o-2024-08-06:org:x:abc") == "gpt-4o-2024-08-06"
    assert (declared.announced, declared.inactive_cutoff) == (date(2026, 5, 7), date(2026, 7, 2))
