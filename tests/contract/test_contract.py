"""One suite every registered provider passes: whatever is installed under the
``ftm.providers`` entry points (built-in or plugin) is collected here by name, so a new
provider joins by being installed. It checks what a provider declares (settings, options,
capabilities against the methods it overrides, lifecycle, prices, default method, extra
commands) and, where the provider names a test harness (`Provider.contract_harness`), runs
a real create -> refresh -> cancel round trip on it."""

from __future__ import annotations

import importlib
import time
from datetime import date
from pathlib import Path

import click
import pytest
from pydantic import BaseModel

from app.cli.main import COMMAND_MODULES, cli
from app.jobs.providers import make_provider
from providers.base import ContractHarness, Provider
from providers.pricing import PriceTable
from providers.registry import discover
from providers.types import BaseModelInfo, JobStatus, ProviderLifecycle, Refresh, RemoteJob

REGISTRY = discover()
NAMES = REGISTRY.names()
WITH_HARNESS = [n for n in NAMES if REGISTRY.get(n).contract_harness()]

# capability flag -> the optional methods a provider with it must implement (and one
# without it must leave to the contract's refusing defaults).
FLAG_METHODS = {
    "can_pause": ("pause",),
    "can_resume_from_checkpoint": ("resume_from_checkpoint",),
    "batch_completion": ("complete_batch",),
}


def _overrides(cls: type[Provider], method: str) -> bool:
    return getattr(cls, method) is not getattr(Provider, method)


def _load(path: str):
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def test_the_registry_has_no_broken_provider_and_the_builtins():
    assert not REGISTRY.broken
    assert {"openai", "local"} <= set(NAMES)
    # The round trip must not silently test nothing: the built-ins bring a harness.
    assert {"openai", "local"} <= set(WITH_HARNESS)
    if "together" in NAMES:  # installed (its SDK is an extra): on its emulator
        assert "together" in WITH_HARNESS


@pytest.mark.parametrize("name", NAMES)
def test_identity(name):
    cls = REGISTRY.get(name)
    assert cls.name == name, "the entry-point name is the provider's registry key"
    assert isinstance(cls.display_name, str) and cls.display_name.strip()


@pytest.mark.parametrize("name", NAMES)
def test_settings_model_and_from_config(name):
    """Built from defaults through the one factory ftm uses, with no network."""
    cls = REGISTRY.get(name)
    assert issubclass(cls.settings_model, BaseModel)
    provider = make_provider(name)
    try:
        assert isinstance(provider, cls)
    finally:
        provider.close()


@pytest.mark.parametrize("name", NAMES)
def test_capabilities_agree_with_the_methods_it_implements(name):
    cls = REGISTRY.get(name)
    caps = cls.capabilities
    for flag, methods in FLAG_METHODS.items():
        for method in methods:
            assert _overrides(cls, method) == getattr(caps, flag), (
                f"{name}: capabilities.{flag} is {getattr(caps, flag)} but {method} is "
                f"{'' if _overrides(cls, method) else 'not '}implemented"
            )
    # `resume` undoes a pause, or (a provider that cannot pause) continues a failed job.
    if caps.can_pause:
        assert _overrides(cls, "resume"), f"{name} can pause but not resume"
    if _overrides(cls, "resume"):
        assert caps.can_pause or caps.can_resume_from_checkpoint, f"{name}: resume of what?"
    assert caps.methods and len(set(caps.methods)) == len(caps.methods)
    assert caps.supports_dpo == ("dpo" in caps.methods)


@pytest.mark.parametrize("name", NAMES)
def test_default_method_is_one_it_offers(name):
    cls = REGISTRY.get(name)
    assert cls.default_method() in cls.capabilities.methods


@pytest.mark.parametrize("name", NAMES)
def test_auto_epochs_is_a_positive_count_or_ftm_s_rule(name):
    cls = REGISTRY.get(name)
    for n_examples in (1, 10, 1000, 100_000):
        epochs = cls.auto_epochs(n_examples)
        assert epochs is None or (isinstance(epochs, int) and epochs >= 1), (name, epochs)


@pytest.mark.parametrize("name", NAMES)
def test_options_are_coherent(name):
    names = [o.name for o in REGISTRY.get(name).options]
    assert len(set(names)) == len(names), f"{name}: an option is declared twice"
    for option in REGISTRY.get(name).options:
        assert option.name and option.description
        if option.choices is not None and option.default is not None:
            assert option.default in option.choices, option.name


@pytest.mark.parametrize("name", NAMES)
def test_lifecycle_is_dated_data(name):
    facts = REGISTRY.get(name).lifecycle()
    assert isinstance(facts, ProviderLifecycle)
    assert facts.job_creation_cutoff is None or isinstance(facts.job_creation_cutoff, date)
    assert all(isinstance(day, date) for day in facts.retirements.values())
    assert facts.warn_days >= 0
    for model in facts.retirements:
        assert isinstance(facts.base_model(model), str)


@pytest.mark.parametrize("name", NAMES)
def test_pricing_is_sound_and_matches_how_it_bills(name):
    """A declared table has dated sources and no incoherent figure, and its basis agrees
    with the capabilities: per-token billing is priced per token, training on this
    machine by the GPU-hour."""
    cls = REGISTRY.get(name)
    table = cls.pricing()
    if table is None:  # allowed for a provider not billed per token: left out of estimates
        assert not cls.capabilities.per_token_billing, f"{name} bills per token: declare prices"
        return
    assert isinstance(table, PriceTable)
    assert table.problems() == []
    assert all(source.text and source.as_of <= date.today() for source in table.sources.values())
    assert (table.basis == "tokens") == cls.capabilities.per_token_billing
    if cls.capabilities.runs_locally:
        assert table.basis == "hardware"


def test_pricing_soundness_check_catches_broken_tables():
    """The check the previous test relies on fails on what it must fail on."""
    from providers.pricing import ModelPrice, PriceSource

    good = ModelPrice(1, 1, 1, 1, 1, source="s")
    sources = {"s": PriceSource("list", date(2026, 1, 1))}
    assert PriceTable("tokens", sources, {"m": good}).problems() == []
    assert PriceTable("tokens", sources, {}).problems()  # prices nothing
    assert PriceTable("tokens", {}, {"m": good}).problems()  # no source
    bad = ModelPrice(-1, 1, 1, 1, 1, source="s")
    assert PriceTable("tokens", sources, {"m": bad}).problems()
    assert PriceTable("tokens", sources, {"m": good}, aliases={"x": "nope"}).problems()


@pytest.mark.parametrize("name", NAMES)
def test_cli_commands_are_click_commands_ftm_offers(name):
    own = {getattr(importlib.import_module(m), a).name for m, a in COMMAND_MODULES}
    with click.Context(cli) as ctx:
        listed = cli.list_commands(ctx)
        for path in REGISTRY.get(name).cli_commands():
            command = _load(path)
            assert isinstance(command, click.Command), path
            assert command.name not in own, f"{path} hides ftm's own {command.name!r} command"
            assert command.name in listed and cli.get_command(ctx, command.name) is command


@pytest.mark.slow
@pytest.mark.parametrize("name", WITH_HARNESS)
def test_round_trip_on_its_harness(name, tmp_path: Path):
    """Base models listed; a job prepared, created, refreshed and cancelled for real on the
    provider's test backend."""
    cls = REGISTRY.get(name)
    with _load(cls.contract_harness())(tmp_path) as harness:
        assert isinstance(harness, ContractHarness) and isinstance(harness.provider, cls)
        provider = harness.provider
        models = provider.list_base_models()
        assert models and all(isinstance(m, BaseModelInfo) for m in models)
        assert harness.spec.base_model in {m.id for m in models}
        spec = provider.prepare(harness.spec)
        assert provider.validate_spec(spec) == []
        created = provider.create(spec)
        assert isinstance(created, RemoteJob) and created.remote_id
        assert not created.status.is_terminal
        refreshed = provider.refresh(created.remote_id)
        assert isinstance(refreshed, Refresh)
        assert refreshed.job.remote_id == created.remote_id
        cancelled = provider.cancel(created.remote_id)
        assert cancelled.remote_id == created.remote_id
        # A cancel may take effect a moment later (a worker stopping): it must arrive.
        deadline = time.monotonic() + 120
        final = provider.refresh(created.remote_id).job
        while not final.status.is_terminal and time.monotonic() < deadline:
            time.sleep(0.5)
            final = provider.refresh(created.remote_id).job
        assert final.status == JobStatus.CANCELLED, final.status
