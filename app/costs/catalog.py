"""The price catalog: the shipped `catalog.toml`, overridden or extended by the user's file.

Every figure keeps the name of its source, and every source has a date, so an estimate can
say where each price came from and how old it is. The user's file (settings
``prices_file``) has the same shape; a table it names replaces the shipped one key by key,
and new keys (a GPU of their own, a negotiated price) are added. A GPU may give a single
``usd_per_hour`` instead of a ``prices`` list, and owned hardware (``owned = true`` with
``watts``) is priced at the electricity it draws. For example::

    as_of = "2026-11-01"
    [openai.models."gpt-4o-mini-2024-07-18"]
    training = 2.40                      # our negotiated price
    [gpus.h100]
    usd_per_hour = 1.85                  # our reserved rate
    cloud = "reserved"
    [gpus.lab-a6000]                     # our own GPU
    name = "lab RTX A6000"
    tflops_bf16 = 155
    memory_gb = 48
    owned = true
    watts = 300
    [electricity]
    usd_per_kwh = 0.30

Lifecycle dates (the OpenAI job-creation cutoff, the base models' retirement dates and
per-example token limits) are not prices: their one source is the OpenAI provider's
``providers/openai/lifecycle.toml``, merged in here so every estimate carries them. A user
prices file may add ``sunset`` / ``token_limit`` for a model that file does not list.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.costs.errors import CatalogError, UnknownGPU, UnknownModel, known_list
from providers.openai.lifecycle import LIFECYCLE_FILE, load_lifecycle

SHIPPED_CATALOG = Path(__file__).with_name("catalog.toml")
# OpenAI's per-example limit for current models, when neither file names one.
DEFAULT_TOKEN_LIMIT = 65536


def _newest_lifecycle_date() -> date:
    """The lifecycle file's announcement date: the date its figures are as of."""
    raw = tomllib.loads(LIFECYCLE_FILE.read_text(encoding="utf-8"))
    return _date(raw.get("service", {}).get("announced", "1970-01-01"), str(LIFECYCLE_FILE))


@dataclass(frozen=True)
class Source:
    key: str
    text: str
    as_of: date


@dataclass(frozen=True)
class HostedModel:
    """Prices of one hosted base model, USD per 1M tokens."""

    id: str
    training: float
    ft_input: float
    ft_output: float
    base_input: float
    base_output: float
    ft_cached_input: float | None
    base_cached_input: float | None
    token_limit: int
    sunset: date | None
    source: Source
    sunset_source: Source | None


@dataclass(frozen=True)
class CloudPrice:
    cloud: str
    usd_per_hour: float
    source: Source


@dataclass(frozen=True)
class GPU:
    """One hardware type: peak dense bf16 compute, memory, bandwidth and hourly prices."""

    key: str
    name: str
    tflops_bf16: float
    memory_gb: float
    bandwidth_tbs: float
    prices: tuple[CloudPrice, ...]
    spec_source: Source
    owned: bool = False
    watts: float | None = None

    @property
    def peak_flops(self) -> float:
        return self.tflops_bf16 * 1e12

    @property
    def memory_bytes(self) -> float:
        return self.memory_gb * 1e9


@dataclass(frozen=True)
class Catalog:
    as_of: date
    sources: dict[str, Source]
    hosted: dict[str, HostedModel]
    aliases: dict[str, str]
    gpus: dict[str, GPU]
    electricity_usd_per_kwh: float
    electricity_source: Source
    defaults: dict[str, float]
    defaults_source: Source
    service_cutoff: date
    service_cutoff_source: Source
    cache_min_prefix_tokens: int
    files: tuple[str, ...] = field(default_factory=tuple)
    """The files merged into this catalog, shipped first."""

    def age_days(self, today: date | None = None) -> int:
        return ((today or date.today()) - self.as_of).days

    def hosted_model(self, name: str) -> HostedModel:
        """The hosted model ``name`` (a dated snapshot or a short alias)."""
        key = self.aliases.get(name, name)
        # An `ft:` id prices as its base snapshot.
        if key.startswith("ft:"):
            key = self.aliases.get(key.split(":")[1], key.split(":")[1])
        try:
            return self.hosted[key]
        except KeyError:
            raise UnknownModel(
                f"no OpenAI prices for model {name!r}; known: "
                f"{known_list(set(self.hosted) | set(self.aliases))}. "
                f'Add it to your prices file (settings prices_file) as [openai.models."{key}"] '
                "with training, ft_input, ft_output, base_input and base_output (USD per 1M "
                "tokens)."
            ) from None

    def is_hosted(self, name: str) -> bool:
        """Whether ``name`` is a hosted model this catalog prices."""
        try:
            self.hosted_model(name)
        except UnknownModel:
            return False
        return True

    def gpu(self, key: str) -> GPU:
        """The GPU ``key`` (case-insensitive)."""
        gpu = self.gpus.get(key.lower())
        if gpu is None:
            raise UnknownGPU(
                f"unknown GPU {key!r}; known: {known_list(set(self.gpus))}. "
                f"Add it to your prices file (settings prices_file) as [gpus.{key.lower()}] "
                "with tflops_bf16, memory_gb and usd_per_hour."
            )
        return gpu

    def hourly_price(self, gpu: GPU, cloud: str | None = None) -> CloudPrice:
        """The $/hour of ``gpu``: the named cloud's price, else the cheapest listed; owned
        hardware costs its electricity."""
        if gpu.owned and gpu.watts is not None and not gpu.prices:
            return CloudPrice(
                "owned (electricity)",
                gpu.watts / 1000 * self.electricity_usd_per_kwh,
                self.electricity_source,
            )
        if not gpu.prices:
            raise CatalogError(
                f"GPU {gpu.key!r} has no price: give it `usd_per_hour` or "
                "`owned = true` with `watts` in your prices file"
            )
        if cloud:
            for price in gpu.prices:
                if price.cloud == cloud:
                    return price
            raise CatalogError(
                f"no {cloud!r} price for GPU {gpu.key!r}; clouds: "
                f"{known_list({p.cloud for p in gpu.prices})}"
            )
        return min(gpu.prices, key=lambda p: p.usd_per_hour)

    def default(self, name: str) -> float:
        return float(self.defaults[name])


def no_priced_gpu_message(catalog: Catalog, cloud: str | None) -> str:
    """Why no GPU can be chosen, and how to give one a price."""
    if cloud is not None:
        clouds = sorted({p.cloud for g in catalog.gpus.values() for p in g.prices})
        return f"no catalog GPU has a {cloud!r} price; clouds: {', '.join(clouds)}"
    return (
        "the price catalog has no priced GPU; add one to your prices file (settings "
        "prices_file) as [gpus.NAME] with tflops_bf16, memory_gb and usd_per_hour"
    )


# --------------------------------------------------------------------------- loading


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise CatalogError(
            f"prices file {path} does not exist; fix settings prices_file or create it"
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise CatalogError(f"prices file {path} is not valid TOML: {e}") from None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _mark_user_figures(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    """Point every figure of the user's file at a source naming that file."""
    raw = copy.deepcopy(raw)
    as_of = raw.pop("as_of", None) or date.fromtimestamp(path.stat().st_mtime).isoformat()
    key = "user"
    raw.setdefault("sources", {})[key] = {"text": f"your prices file {path}", "as_of": str(as_of)}
    for model in raw.get("openai", {}).get("models", {}).values():
        model.setdefault("source", key)
        if "sunset" in model:
            model.setdefault("sunset_source", key)
    for gpu in raw.get("gpus", {}).values():
        if "usd_per_hour" in gpu:
            gpu["prices"] = [
                {"cloud": gpu.pop("cloud", "own"), "usd_per_hour": gpu.pop("usd_per_hour")}
            ]
        for price in gpu.get("prices", []):
            price.setdefault("source", key)
        if any(k in gpu for k in ("tflops_bf16", "memory_gb", "bandwidth_tbs")):
            gpu.setdefault("spec_source", key)
    if "electricity" in raw:
        raw["electricity"].setdefault("source", key)
    if "defaults" in raw:
        raw["defaults"].setdefault("source", key)
    return raw


def _date(value: Any, where: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise CatalogError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from None


def _build(raw: dict[str, Any], files: tuple[str, ...]) -> Catalog:
    sources = {
        k: Source(k, v["text"], _date(v["as_of"], f"sources.{k}.as_of"))
        for k, v in raw.get("sources", {}).items()
    }

    def src(key: str | None, where: str) -> Source:
        if key not in sources:
            raise CatalogError(
                f"{where}: unknown source {key!r}; known: {known_list(set(sources))}"
            )
        return sources[key]

    lifecycle = load_lifecycle()
    lifecycle_source = Source(
        "openai_lifecycle",
        f"providers/openai/lifecycle.toml ({lifecycle.source})",
        _newest_lifecycle_date(),
    )
    try:
        openai = raw["openai"]
        hosted = {}
        for mid, m in openai.get("models", {}).items():
            where = f"openai.models.{mid!r}"
            info = lifecycle.model(mid)
            sunset = m.get("sunset") or (info.sunset if info else None)
            hosted[mid] = HostedModel(
                id=mid,
                training=float(m["training"]),
                ft_input=float(m["ft_input"]),
                ft_output=float(m["ft_output"]),
                base_input=float(m["base_input"]),
                base_output=float(m["base_output"]),
                ft_cached_input=_opt_float(m.get("ft_cached_input")),
                base_cached_input=_opt_float(m.get("base_cached_input")),
                token_limit=int(
                    m.get("token_limit")
                    or (info.context_limit if info and info.context_limit else 0)
                    or DEFAULT_TOKEN_LIMIT
                ),
                sunset=_date(sunset, where + ".sunset") if sunset else None,
                source=src(m.get("source"), where),
                sunset_source=(
                    src(m["sunset_source"], where)
                    if m.get("sunset")
                    else lifecycle_source
                    if sunset
                    else None
                ),
            )
        gpus = {}
        for key, g in raw.get("gpus", {}).items():
            where = f"gpus.{key}"
            gpus[key.lower()] = GPU(
                key=key.lower(),
                name=g.get("name", key),
                tflops_bf16=float(g["tflops_bf16"]),
                memory_gb=float(g["memory_gb"]),
                bandwidth_tbs=float(g.get("bandwidth_tbs", 0)),
                prices=tuple(
                    CloudPrice(p["cloud"], float(p["usd_per_hour"]), src(p.get("source"), where))
                    for p in g.get("prices", [])
                ),
                spec_source=src(g.get("spec_source"), where),
                owned=bool(g.get("owned", False)),
                watts=_opt_float(g.get("watts")),
            )
        defaults = {k: v for k, v in raw["defaults"].items() if k != "source"}
        return Catalog(
            as_of=_date(raw["as_of"], "as_of"),
            sources=sources,
            hosted=hosted,
            aliases=dict(openai.get("aliases", {})),
            gpus=gpus,
            electricity_usd_per_kwh=float(raw["electricity"]["usd_per_kwh"]),
            electricity_source=src(raw["electricity"].get("source"), "electricity"),
            defaults=defaults,
            defaults_source=src(raw["defaults"].get("source"), "defaults"),
            service_cutoff=lifecycle.job_creation_cutoff,
            service_cutoff_source=lifecycle_source,
            cache_min_prefix_tokens=int(openai.get("cache_min_prefix_tokens", 1024)),
            files=files,
        )
    except KeyError as e:
        raise CatalogError(
            f"price catalog {' + '.join(files)}: missing field {e.args[0]!r}"
        ) from None
    except (TypeError, ValueError) as e:
        if isinstance(e, CatalogError):
            raise
        raise CatalogError(f"price catalog {' + '.join(files)}: {e}") from None


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@lru_cache(maxsize=8)
def _load_cached(user_file: str | None, mtime: float | None) -> Catalog:
    raw = _read_toml(SHIPPED_CATALOG)
    files = (str(SHIPPED_CATALOG),)
    if user_file:
        path = Path(user_file)
        raw = _merge(raw, _mark_user_figures(_read_toml(path), path))
        files += (str(path),)
    return _build(raw, files)


def load_catalog(prices_file: Path | str | None = None, *, use_settings: bool = True) -> Catalog:
    """The shipped catalog merged with ``prices_file`` (default: settings ``prices_file``).

    Cached per file and modification time, so an edited file is re-read.
    """
    if prices_file is None and use_settings:
        from app.settings import get_settings

        prices_file = get_settings().prices_file
    if prices_file is None:
        return _load_cached(None, None)
    path = Path(prices_file).expanduser()
    if not path.exists():
        raise CatalogError(
            f"prices file {path} does not exist; fix settings prices_file or create it"
        )
    return _load_cached(str(path), path.stat().st_mtime)
