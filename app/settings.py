"""ftm's settings: environment variables over a TOML config file over defaults.

Where things live:
- ``FTM_HOME`` relocates everything (data, config, job directories); tests set it to a
  temporary directory to isolate themselves.
- Without it, data goes to the platform's user data directory and the config file is read
  from the platform's user config directory (platformdirs).
- ``FTM_CONFIG`` points at another config file; ``FTM_DATABASE_URL`` at another database.

Nested sections map to TOML tables (``[openai]``, ``[poller]``...) and to environment
variables with a double underscore: ``FTM_OPENAI__BASE_URL``, ``FTM_POLLER__INTERVAL_S``.
Secrets are never read from here into the database: the OpenAI key comes from
``OPENAI_API_KEY`` or from a command that prints it.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import platformdirs
from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

APP_NAME = "ftm"


def home_dir() -> Path:
    """The directory holding ftm's data: ``FTM_HOME`` or the platform's user data dir."""
    if os.environ.get("FTM_HOME"):
        return Path(os.environ["FTM_HOME"]).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME))


def config_path() -> Path:
    """The TOML config file: ``FTM_CONFIG``, else ``$FTM_HOME/config.toml``, else the
    platform's user config dir."""
    if os.environ.get("FTM_CONFIG"):
        return Path(os.environ["FTM_CONFIG"]).expanduser()
    if os.environ.get("FTM_HOME"):
        return home_dir() / "config.toml"
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


class OpenAISettings(BaseModel):
    """How the OpenAI provider reaches the API."""

    base_url: str | None = None
    """Another API base URL (a proxy, a gateway). Unset: the SDK's default."""
    organization: str | None = None
    project: str | None = None
    api_key_command: str | None = None
    """A shell command that prints the API key (e.g. a password manager), used when
    OPENAI_API_KEY is not set. Its output is never stored or logged."""
    azure_endpoint: str | None = None
    """Set to use Azure OpenAI (e.g. https://NAME.openai.azure.com) with the same provider."""
    azure_api_version: str = "2025-04-01-preview"
    sandbox: bool = False
    """Point the provider at the local emulator (`ftm sandbox`) instead of the real API."""
    sandbox_url: str = "http://127.0.0.1:8765/v1"
    timeout_s: float = 60.0
    max_retries: int = 2


class PollerSettings(BaseModel):
    """The background job poller (`ftm watch` and inside the TUI)."""

    interval_s: float = 10.0
    """Seconds between poll cycles."""
    concurrency: int = 16
    """Jobs refreshed at once."""
    requests_per_second: float = 20.0
    """Per-provider rate limit."""
    stall_after_s: float = 1800.0
    """A running job with no progress for this long gets a stall warning."""
    unconfirmed_grace_s: float = 300.0
    """After a create whose answer was lost, how long ftm keeps looking the job up before
    it concludes the job was never made: a request the service received late (a slow or
    retried call still in flight) can still create it within this window."""


class LocalSettings(BaseModel):
    """The local PEFT backend."""

    jobs_dir: Path | None = None
    """Where job directories go. Unset: ``<home>/jobs``."""
    python: str | None = None
    """The Python interpreter that runs training workers. Unset: the one running ftm."""


class DataSettings(BaseModel):
    """Dataset intake."""

    near_duplicate_threshold: float = 0.85
    """Estimated Jaccard similarity at or above which two examples are near-duplicates."""
    imbalance_ratio: float = 10.0
    """Warn when the most common label is this many times the least common."""


class TuiSettings(BaseModel):
    """The terminal app."""

    theme: str = "textual-dark"
    """Textual theme at start-up (``textual-light`` for light terminals); ctrl+t toggles."""
    keymap: dict[str, str] = {}
    """Remapped keys by binding id, e.g. ``{"app.new_job" = "ctrl+n"}`` (ids: the help screen
    and ``app/tui``); the value may list several keys separated by commas."""


class Settings(BaseSettings):
    """All of ftm's settings."""

    model_config = SettingsConfigDict(
        env_prefix="FTM_", env_nested_delimiter="__", extra="ignore"
    )

    home: Path = Field(default_factory=home_dir)
    database_url: str | None = None
    """Any SQLAlchemy URL. Unset: a SQLite file ``ftm.db`` in the home directory."""
    prices_file: Path | None = None
    """A TOML file that overrides or extends the shipped price catalog."""
    user: str | None = None
    """Recorded as 'who' on promotions (``FTM_USER``); unset: the OS user
    (`app.promotion.aliases.promoter_name`)."""

    openai: OpenAISettings = OpenAISettings()
    poller: PollerSettings = PollerSettings()
    local: LocalSettings = LocalSettings()
    data: DataSettings = DataSettings()
    tui: TuiSettings = TuiSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_path())
        return (init_settings, env_settings, toml)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'ftm.db'}"

    @property
    def jobs_dir(self) -> Path:
        return self.local.jobs_dir or self.home / "jobs"


@cache
def get_settings() -> Settings:
    """The process's settings, read once. Tests call ``get_settings.cache_clear()``."""
    return Settings()
