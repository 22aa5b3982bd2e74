"""Provider settings declared on the contract: a provider's own ``[providers.NAME]`` table
and ``FTM_PROVIDERS__NAME__FIELD`` variables reach it, validated, through the one factory."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from app.jobs.providers import make_provider
from app.settings import SettingsError, get_settings
from providers.base import Provider, ProviderContext
from providers.registry import ProviderRegistry


class AcmeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    region: str = "us-east"
    """Where Acme trains."""
    timeout_s: float = 30.0


class AcmeProvider(Provider):
    """A third-party provider as a plugin would ship it: nothing in app/ knows it."""

    name = "acme"
    display_name = "Acme"
    settings_model = AcmeSettings

    def __init__(self, config: AcmeSettings, context: ProviderContext) -> None:
        self.config = config
        self.context = context

    @classmethod
    def from_config(cls, config: BaseModel, context: ProviderContext) -> AcmeProvider:
        assert isinstance(config, AcmeSettings)
        return cls(config, context)

    def prepare(self, spec):  # the operations are not what this test is about
        raise NotImplementedError

    def create(self, spec):
        raise NotImplementedError

    def refresh(self, remote_id: str, events_cursor: str | None = None):
        raise NotImplementedError

    def cancel(self, remote_id: str):
        raise NotImplementedError

    def list_base_models(self):
        return []

    def complete(self, model: str, messages: Sequence, **kwargs):
        raise NotImplementedError


class BareProvider(AcmeProvider):
    """A provider that declares no settings: the contract's defaults."""

    name = "bare"
    settings_model = Provider.settings_model

    def __init__(self) -> None:
        pass

    from_config = Provider.__dict__["from_config"]


def _registry() -> ProviderRegistry:
    reg = ProviderRegistry()
    reg.register(AcmeProvider)
    reg.register(BareProvider)
    return reg


def _config(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text)
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_settings():
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _acme() -> AcmeProvider:
    provider = make_provider("acme", reg=_registry(), settings=get_settings())
    assert isinstance(provider, AcmeProvider)
    return provider


def test_plugin_gets_its_table_from_config_toml(ftm_home):
    _config(ftm_home, '[providers.acme]\nregion = "eu-west"\ntimeout_s = 5\n')
    provider = _acme()
    assert provider.config == AcmeSettings(region="eu-west", timeout_s=5.0)
    assert provider.context.home == ftm_home
    assert provider.context.jobs_dir == ftm_home / "jobs"


def test_plugin_gets_its_settings_from_the_environment_over_the_file(ftm_home, monkeypatch):
    _config(ftm_home, '[providers.acme]\nregion = "eu-west"\n')
    monkeypatch.setenv("FTM_PROVIDERS__ACME__REGION", "ap-south")
    monkeypatch.setenv("FTM_PROVIDERS__ACME__TIMEOUT_S", "9")
    assert _acme().config == AcmeSettings(region="ap-south", timeout_s=9.0)


def test_plugin_without_a_table_gets_its_defaults(ftm_home):
    assert _acme().config == AcmeSettings()


def test_invalid_value_in_the_file_is_named_with_its_line(ftm_home):
    _config(ftm_home, '[poller]\ninterval_s = 1\n\n[providers.acme]\ntimeout_s = "soon"\n')
    with pytest.raises(SettingsError) as err:
        _acme()
    message = str(err.value)
    assert "setting providers.acme.timeout_s = 'soon'" in message
    assert f"from {ftm_home / 'config.toml'}, line 5" in message
    assert "\n" not in message


def test_invalid_value_in_the_environment_names_the_variable(ftm_home, monkeypatch):
    monkeypatch.setenv("FTM_PROVIDERS__ACME__TIMEOUT_S", "soon")
    with pytest.raises(SettingsError, match="environment variable FTM_PROVIDERS__ACME__TIMEOUT_S"):
        _acme()


def test_unknown_key_is_refused_not_ignored(ftm_home):
    _config(ftm_home, '[providers.bare]\nregoin = "eu"\n')
    with pytest.raises(SettingsError, match=r"providers\.bare\.regoin .*line 2"):
        make_provider("bare", reg=_registry(), settings=get_settings())


def test_provider_without_settings_is_built_by_the_default(ftm_home):
    assert isinstance(make_provider("bare", reg=_registry(), settings=get_settings()), BareProvider)


# -- the built-in providers take the same path; their older tables still work ------------


def test_openai_reads_providers_openai_and_the_older_openai_table(ftm_home):
    _config(ftm_home, '[openai]\nbase_url = "http://proxy.local/v1"\ntimeout_s = 5\n')
    provider = make_provider("openai")
    assert provider.config.base_url == "http://proxy.local/v1"
    assert provider.config.timeout_s == 5.0
    assert provider.simulated is False

    _config(
        ftm_home,
        '[openai]\nbase_url = "http://proxy.local/v1"\ntimeout_s = 5\n'
        "[providers.openai]\nsandbox = true\ntimeout_s = 7\n",
    )
    provider = make_provider("openai")
    assert provider.simulated is True  # [providers.openai] is read
    assert provider.config.timeout_s == 7.0  # and wins over the older table
    assert provider.config.base_url == "http://proxy.local/v1"  # which still counts
    # Code reading the older spelling sees the same values.
    assert get_settings().openai.sandbox is True


def test_openai_settings_from_the_environment(ftm_home, monkeypatch):
    monkeypatch.setenv("FTM_PROVIDERS__OPENAI__SANDBOX", "true")
    assert make_provider("openai").simulated is True


def test_local_jobs_dir_from_providers_local(ftm_home, tmp_path):
    jobs = tmp_path / "elsewhere"
    _config(ftm_home, f'[providers.local]\njobs_dir = "{jobs}"\npython = "/usr/bin/python3"\n')
    provider = make_provider("local")
    assert provider.jobs_dir == jobs
    assert provider.python == "/usr/bin/python3"
    assert get_settings().jobs_dir == jobs  # one value, whichever spelling reads it
