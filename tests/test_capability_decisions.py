"""The core decides by what a provider declares (its capability flags), never by its
name: a third-party provider installed as a distribution that trains on this machine is
treated as the built-in local one is, and a hosted one as a hosted one."""

from __future__ import annotations

import sys
import textwrap
from types import SimpleNamespace

import pytest

from app.evaluation.pricing import per_request_cost, token_price
from app.jobs.providers import capabilities_of, default_provider
from app.promotion.targets import model_kind_of
from providers.base import Capabilities

PLUGIN = textwrap.dedent('''
    """Two third-party providers: one trains on this machine, one is hosted."""
    from providers.base import Capabilities, Provider


    class _Unused(Provider):
        def prepare(self, spec):
            raise NotImplementedError

        def create(self, spec):
            raise NotImplementedError

        def refresh(self, remote_id, events_cursor=None):
            raise NotImplementedError

        def cancel(self, remote_id):
            raise NotImplementedError

        def list_base_models(self):
            return []

        def complete(self, model, messages, *, max_tokens=256, temperature=0.0):
            raise NotImplementedError


    class Workstation(_Unused):
        name = "workstation"
        display_name = "Workstation"
        capabilities = Capabilities(runs_locally=True, methods=("lora",))


    class Cloudy(_Unused):
        name = "cloudy"
        display_name = "Cloudy"
        capabilities = Capabilities()

        def model_endpoint(self, *, simulated=False):
            return "http://127.0.0.1:9/cloudy-emulator" if simulated else "https://cloudy.example/v1"
''')

ENTRY_POINTS = """\
[ftm.providers]
workstation = ftm_capability_plugin:Workstation
cloudy = ftm_capability_plugin:Cloudy
"""


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "ftm_capability_plugin").mkdir(parents=True)
    (site / "ftm_capability_plugin" / "__init__.py").write_text(PLUGIN)
    dist = site / "ftm_capability_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: ftm-capability-plugin\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(site))
    yield
    sys.modules.pop("ftm_capability_plugin", None)


def test_capabilities_are_read_from_the_installed_class(installed_plugin):
    assert capabilities_of("workstation").runs_locally is True
    assert capabilities_of("cloudy") == Capabilities()
    assert capabilities_of("local").runs_locally is True
    assert capabilities_of("openai").per_token_billing is True
    # A job row from a plugin since uninstalled: the defaults, not an error.
    assert capabilities_of("uninstalled-plugin") == Capabilities()


def test_a_plugin_that_trains_here_makes_local_models(installed_plugin, tmp_path):
    missing = str(tmp_path / "not-yet-written")
    assert model_kind_of("workstation", missing) == "merged"
    assert model_kind_of("local", missing) == "merged"
    assert model_kind_of("cloudy", "cloudy-model-7") == "hosted"


def test_a_plugin_that_trains_here_is_priced_as_self_hosted(installed_plugin):
    run = SimpleNamespace(provider="workstation", summary={"task": {}}, config={}, model="m")
    assert per_request_cost(run) == (None, "no token counts recorded for its requests")
    run.provider = "cloudy"  # hosted: its measured bill, and it has none
    assert per_request_cost(run) == (None, None)


def test_only_per_token_billing_providers_get_catalog_token_prices(installed_plugin):
    assert token_price("openai", "gpt-4o-mini-2024-07-18") is not None
    assert token_price("cloudy", "gpt-4o-mini-2024-07-18") is None
    assert token_price("workstation", "gpt-4o-mini-2024-07-18") is None


def test_the_wizard_starts_on_a_hosted_provider(installed_plugin):
    assert default_provider(["local", "openai"]) == "openai"
    assert default_provider(["local", "workstation"]) == "local"
    assert default_provider(["local", "openai", "workstation"]) == "openai"
    assert default_provider(["local", "cloudy"]) == "cloudy"
    assert default_provider([]) is None


@pytest.mark.parametrize(("provider", "kind"), [("workstation", "local"), ("cloudy", "hosted")])
def test_actual_cost_follows_where_the_provider_trains(installed_plugin, ftm_home, provider, kind):
    from datetime import UTC, datetime, timedelta

    from app.costs.actuals import record_actual
    from app.database import get_engine
    from db.engine import write_session
    from db.models import Job
    from tests.costs.conftest import chat_examples, store_dataset

    ds = store_dataset(ftm_home, "tickets", chat_examples(12))
    start = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    with write_session(get_engine()) as s:
        job = Job(
            name="plugin job",
            provider=provider,
            base_model="some-model",
            dataset_id=ds.id,
            method="lora",
            status="succeeded",
            started_at=start,
            finished_at=start + timedelta(seconds=180),
        )
        s.add(job)
        s.flush()
        actual = record_actual(s, job)
    assert actual["kind"] == kind


def test_export_hands_out_the_endpoint_the_provider_declares(installed_plugin, ftm_home):
    from app.database import get_engine
    from app.promotion.export import endpoint_for
    from app.settings import get_settings
    from db.models import Promotion

    def endpoint(provider: str, kind: str = "hosted") -> str | None:
        promotion = Promotion(
            task="t",
            alias="prod",
            action="promote",
            provider=provider,
            model="m",
            model_kind=kind,
            who="me",
        )
        return endpoint_for(promotion, get_engine())

    assert endpoint("cloudy") == "https://cloudy.example/v1"
    assert endpoint("cloudy", kind="adapter") is None  # loaded from disk
    assert endpoint("uninstalled-plugin") is None
    ftm_home.mkdir(parents=True, exist_ok=True)
    (ftm_home / "config.toml").write_text(
        '[providers.openai]\nbase_url = "https://gw.example/v1"\n'
    )
    get_settings.cache_clear()
    try:
        assert endpoint("openai") == "https://gw.example/v1"
    finally:
        get_settings.cache_clear()
