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

A broken configuration (a TOML syntax error, a value of the wrong type, a home directory
that cannot be made) raises `SettingsError`: one line naming the setting, where its value
came from (environment variable, or config file and line) and what to fix. The CLI shows
it and exits 2, before any command or the TUI runs.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from app.environment import EnvironmentProblem
from db.storage import Storage
from providers.local.settings import LocalSettings
from providers.openai.config import OpenAISettings

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


class HealthSettings(BaseModel):
    """Training-health detection over every job's metrics (`app/jobs/health.py`)."""

    overfit_evaluations: int = 3
    """Overfitting: eval loss rose this many evaluations in a row while train loss fell."""
    spike_z: float = 6.0
    """Instability: a grad norm this many robust z-scores (median/MAD) above its recent
    values is a spike."""
    spike_history: int = 5
    """Points of grad norm needed before spikes are judged (and the window judged against
    is at most 50 points)."""
    explode_factor: float = 4.0
    """Instability: train loss above this many times its running minimum is exploding."""
    plateau_window: int = 20
    """Plateau: metric points per window; the mean of the last window is compared with the
    one before."""
    plateau_min_improvement: float = 0.01
    """Plateau: a relative drop of the window mean smaller than this is no improvement."""
    schedule_tolerance: float = 0.001
    """Schedule: relative learning-rate change below this counts as unchanged."""


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


class DeploymentSettings(BaseModel):
    """Deployments (`ftm deploy`)."""

    idle_warning: str = "1h"
    """Warn (`ftm watch`, the TUI) about a running deployment billed by the hour that has
    no idle limit and has served no request for this long (30m, 2h...)."""

    eval_idle_stop: str = "30m"
    """The idle limit given to a billed deployment an evaluation brought up (a Together
    fine-tune answers only from a dedicated endpoint, made on first use): recorded as a
    deployment and stopped after this long without a request, never forgotten."""

    @field_validator("idle_warning", "eval_idle_stop")
    @classmethod
    def _a_duration(cls, value: str) -> str:
        from app.deployments.durations import parse_duration

        parse_duration(value)  # DurationError is a ValueError: reported with the setting
        return value

    @property
    def idle_warning_s(self) -> int:
        from app.deployments.durations import parse_duration

        return parse_duration(self.idle_warning)

    @property
    def eval_idle_stop_s(self) -> int:
        from app.deployments.durations import parse_duration

        return parse_duration(self.eval_idle_stop)


class StorageSettings(BaseModel):
    """Where dataset files and job directories live (`db.storage`)."""

    root: str | None = None
    """A directory (a mounted shared one for a team) or an fsspec URL (``s3://bucket/ftm``);
    unset: the home directory. The database names files relative to it, so every machine
    that shares a database sets the same shared root."""


class Settings(BaseSettings):
    """All of ftm's settings."""

    # env_ignore_empty: ``FTM_HOME=`` means unset, as `home_dir` reads it, not the
    # current directory.
    model_config = SettingsConfigDict(
        env_prefix="FTM_", env_nested_delimiter="__", extra="ignore", env_ignore_empty=True
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
    health: HealthSettings = HealthSettings()
    tui: TuiSettings = TuiSettings()
    deployments: DeploymentSettings = DeploymentSettings()
    storage: StorageSettings = StorageSettings()
    providers: dict[str, dict[str, Any]] = {}
    """Each provider's own table, ``[providers.NAME]`` (``FTM_PROVIDERS__NAME__FIELD``),
    raw here: validated against the provider's declared ``settings_model`` by
    `provider_settings`. The older ``[openai]`` and ``[local]`` tables above are aliases of
    ``[providers.openai]`` and ``[providers.local]`` (the latter wins)."""

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
    def file_store(self) -> Storage:
        """This machine's view of the storage root (a URL root mirrored under the home)."""
        return Storage(
            root=self.storage.root or str(self.home), cache_dir=self.home / "storage-cache"
        )

    @property
    def jobs_dir(self) -> Path:
        """``[local] jobs_dir``, else ``jobs/`` under the storage root (its local mirror
        for a URL root), so a job's artifacts are where teammates find them."""
        return self.local.jobs_dir or self.file_store.area("jobs")


class SettingsError(EnvironmentProblem):
    """The settings cannot be read: the config file or a setting's value is wrong."""


@cache
def get_settings() -> Settings:
    """The process's settings, read once. Tests call ``get_settings.cache_clear()``.

    Raises `SettingsError` when the config file or a setting is invalid.
    """
    _check_chosen_config_file()
    try:
        return _fold_provider_tables(Settings())
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(_describe_toml_error(exc)) from None
    except UnicodeDecodeError as exc:
        raise SettingsError(_describe_encoding_error(exc)) from None
    except ValidationError as exc:
        raise SettingsError(_describe_validation_error(exc)) from None
    except OSError as exc:  # the config file exists but cannot be read
        raise SettingsError(
            f"cannot read the config file {config_path()}: "
            f"{(exc.strerror or str(exc)).lower()}. "
            "Make it readable, or set FTM_CONFIG to another file."
        ) from None


def provider_settings(
    settings: Settings, name: str, model: type[BaseModel], alias: str | None = None
) -> BaseModel:
    """Provider ``name``'s settings as its declared ``model``: the ``[providers.NAME]``
    table over the older top-level table ``alias`` (when the provider declares one).

    Raises:
        SettingsError: a value is invalid or a key unknown, named with where it came from.
    """
    data: dict[str, Any] = {}
    if alias is not None and isinstance(getattr(settings, alias, None), BaseModel):
        # Only what the user set there: the model's own defaults fill in the rest.
        data.update(getattr(settings, alias).model_dump(exclude_unset=True))
    data.update(settings.providers.get(name, {}))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SettingsError(_describe_validation_error(exc, ("providers", name))) from None


def _fold_provider_tables(settings: Settings) -> Settings:
    """Make ``[providers.NAME]`` visible through a built-in table of the same name (e.g.
    ``settings.local.jobs_dir``), so code reading either spelling sees one value."""
    for name in settings.providers:
        section = getattr(settings, name, None) if name in Settings.model_fields else None
        if isinstance(section, BaseModel):
            setattr(settings, name, provider_settings(settings, name, type(section), name))
    return settings


def _check_chosen_config_file() -> None:
    """A config file named by FTM_CONFIG must exist: silently running on defaults would
    hide a typo in the path. (The default location may well have none.)"""
    if not os.environ.get("FTM_CONFIG"):
        return
    path = config_path()
    if not path.is_file():
        problem = "is a directory" if path.is_dir() else "does not exist"
        raise SettingsError(
            f"the config file {path} (from the environment variable FTM_CONFIG) {problem}. "
            "Point FTM_CONFIG at a TOML file, or unset it to use the default location."
        )


def ensure_home(settings: Settings) -> Path:
    """Create ftm's home directory if needed; `SettingsError` if it cannot be made."""
    try:
        settings.home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        source = setting_source(("home",))
        if source.env_var or not source.in_file:
            fix = f"Set {source.env_var or 'FTM_HOME'} to a directory you can write."
        else:
            fix = f"{source.fix[0].upper()}{source.fix[1:]}: name a directory you can write."
        raise SettingsError(
            f"cannot create ftm's home directory {settings.home} ({source.where}): "
            f"{(exc.strerror or str(exc)).lower()}. {fix}"
        ) from None
    return settings.home


# -- where a setting came from --------------------------------------------------------


class SettingSource(BaseModel):
    """Where a setting's value was read from, in words, and how to change it."""

    where: str
    """E.g. "from the environment variable FTM_POLLER__INTERVAL_S"."""
    fix: str
    """E.g. "fix or unset FTM_POLLER__INTERVAL_S"."""
    env_var: str | None = None
    in_file: bool = False


def setting_source(loc: Sequence[str | int]) -> SettingSource:
    """Where the setting at ``loc`` (e.g. ``("poller", "interval_s")``) came from, by the
    same precedence `Settings` reads: environment, then config file, then the default."""
    keys = [str(part) for part in loc]
    # Case-insensitive, empty means unset: as pydantic-settings reads them (see Settings).
    env = {name.upper(): name for name, value in os.environ.items() if value}
    # FTM_POLLER__INTERVAL_S, or the whole section as JSON in FTM_POLLER.
    for depth in range(len(keys), 0, -1):
        name = env.get(("FTM_" + "__".join(keys[:depth])).upper())
        if name is not None:
            return SettingSource(
                where=f"from the environment variable {name}",
                fix=f"fix or unset {name}",
                env_var=name,
            )
    path = config_path()
    line = _toml_line(path, keys)
    if line is not None:
        return SettingSource(
            where=f"from {path}, line {line}", fix=f"fix line {line} of {path}", in_file=True
        )
    if _toml_sets(path, keys):  # somewhere the line scan cannot place
        return SettingSource(where=f"from {path}", fix=f"fix {path}", in_file=True)
    return SettingSource(where="the default", fix="set it in the environment or config")


def _describe_toml_error(exc: tomllib.TOMLDecodeError) -> str:
    path = config_path()
    # Python 3.11's TOMLDecodeError has no line attribute: it is in the message.
    found = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
    reason = re.sub(r"\s*\(at .*\)$", "", str(exc)).lower()
    if found:
        line, column = found.groups()
        where = f"{path}, line {line}, column {column}"
        fix = f"Fix line {line}"
    else:
        where = str(path)
        fix = "Fix the file"
    return (
        f"the config file {where} is not valid TOML: {reason}. "
        f"{fix}, or set FTM_CONFIG to another file."
    )


def _describe_encoding_error(exc: UnicodeDecodeError) -> str:
    line = exc.object[: exc.start].count(b"\n") + 1
    return (
        f"the config file {config_path()}, line {line} is not UTF-8 text (byte "
        f"{exc.object[exc.start : exc.start + 1]!r}). Save the file as UTF-8."
    )


def _describe_validation_error(exc: ValidationError, prefix: tuple[str, ...] = ()) -> str:
    problems = []
    for error in exc.errors():
        loc = prefix + tuple(str(part) for part in error["loc"])
        name = ".".join(str(part) for part in loc)
        source = setting_source(loc)
        value = mask_passwords(repr(error.get("input")))
        reason = error["msg"][0].lower() + error["msg"][1:]
        problems.append(
            f"setting {name} = {value} {source.where} is not valid: {reason}. "
            f"{source.fix[0].upper()}{source.fix[1:]}"
        )
    return "; ".join(problems) + "."


def _toml_line(path: Path, keys: list[str]) -> int | None:
    """The line of ``path`` that sets ``keys`` (or, failing that, its closest enclosing
    key, e.g. an inline table); None when the file does not set it. A line scan, not a
    parser: it only has to point a person at the right line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    table: list[str] = []
    best: tuple[int, int] | None = None  # (depth matched, line number)
    for number, text in enumerate(lines, start=1):
        stripped = text.strip()
        header = re.fullmatch(r"\[\s*([^\[\]]+?)\s*\]\s*(#.*)?", stripped)
        if header:
            table = _split_key(header.group(1))
            continue
        assignment = re.match(r"((?:[^=\"']|\"[^\"]*\"|'[^']*')+?)\s*=", stripped)
        if not assignment or stripped.startswith("#"):
            continue
        key = table + _split_key(assignment.group(1))
        depth = len(key)
        if key == keys[:depth] and (best is None or depth > best[0]):
            best = (depth, number)
    return best[1] if best else None


def _toml_sets(path: Path, keys: list[str]) -> bool:
    """Whether the config file ``path`` sets ``keys`` (False if it cannot be read)."""
    try:
        node: object = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def _split_key(text: str) -> list[str]:
    """``a."b.c" . d`` -> ``["a", "b.c", "d"]`` (TOML dotted keys, quotes honoured)."""
    parts = re.findall(r"\s*(\"[^\"]*\"|'[^']*'|[^.\s]+)\s*(?:\.|$)", text)
    return [part.strip("\"'") for part in parts]


def mask_passwords(text: str) -> str:
    """``text`` with the password of any URL in it replaced by ``***`` (for messages).

    Also for text that does not parse as a URL: whatever sits between the user name's
    colon and the credentials' last ``@`` goes, with or without a scheme in front.
    """
    return re.sub(r"(^|[\s'\"(/])([^\s/:@'\"()]*):(?!//)\S*@", r"\1\2:***@", text)
