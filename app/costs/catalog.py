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

Token prices are not kept here: every installed provider declares its own
(`Provider.pricing`, e.g. providers/openai/prices.toml) and they are merged in under the
provider's name, so the user's file overrides one as ``[NAME.models."ID"]``. Lifecycle
dates (a provider's job-creation cutoff, its base models' retirement dates) are not prices
either: their one source is the provider's `Provider.lifecycle`, merged in here so every
estimate carries them. A user prices file may add ``sunset`` / ``token_limit`` for a model
the provider does not list.
"""

from __future__ import annotations

import copy
import sys
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.costs.errors import CatalogError, UnknownGPU, UnknownModel, known_list
from providers.pricing import PriceTable

SHIPPED_CATALOG = Path(__file__).with_name("catalog.toml")
# The per-example billed token limit when neither the provider nor the user names one.
DEFAULT_TOKEN_LIMIT = 65536


@dataclass(frozen=True)
class Source:
    key: str
    text: str
    as_of: date


@dataclass(frozen=True)
class HostedModel:
    """Prices of one hosted base model on one provider, USD per 1M tokens."""

    id: str
    provider: str
    """The registry name of the provider whose prices these are."""
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
    cache_min_prefix_tokens: int | None = None
    """Prompt caching applies to prefixes of at least this many tokens; None: none."""
    hosting_per_hour: float | None = None
    """The provider's hourly fee for keeping the fine-tuned model deployed, if any."""
    training_full: float | None = None
    """Per 1M training tokens for full fine-tuning where priced apart (``training`` is
    then the LoRA rate); None: one rate."""


@dataclass(frozen=True)
class ProviderPrices:
    """One provider's declared prices, merged with the user's overrides."""

    name: str
    display_name: str
    basis: str
    """``tokens`` (per-token prices per model) or ``hardware`` (priced by GPU-hour)."""
    models: dict[str, HostedModel]
    aliases: dict[str, str]
    note: str
    service_cutoff: date | None
    """The last day it accepts new jobs (its declared lifecycle); None: none announced."""

    def resolve(self, name: str) -> str:
        """The model id ``name`` is priced under: aliases resolved, an ``ft:`` id priced as
        its base."""
        key = self.aliases.get(name, name)
        if key.startswith("ft:"):
            key = self.aliases.get(key.split(":")[1], key.split(":")[1])
        return key


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
    priced: dict[str, ProviderPrices]
    """Every installed provider that declares prices, by name, the default one first."""
    gpus: dict[str, GPU]
    electricity_usd_per_kwh: float
    electricity_source: Source
    defaults: dict[str, float]
    defaults_source: Source
    files: tuple[str, ...] = field(default_factory=tuple)
    """The files merged into this catalog, shipped first."""

    def age_days(self, today: date | None = None) -> int:
        return ((today or date.today()) - self.as_of).days

    @property
    def token_priced(self) -> dict[str, ProviderPrices]:
        """The providers priced per token, by name."""
        return {n: p for n, p in self.priced.items() if p.basis == "tokens"}

    @property
    def hosted(self) -> dict[str, HostedModel]:
        """Every per-token priced model; a model two providers price is the first's."""
        out: dict[str, HostedModel] = {}
        for prices in reversed(self.token_priced.values()):
            out.update(prices.models)
        return out

    @property
    def aliases(self) -> dict[str, str]:
        """Every provider's short names; a name two providers use is the first's."""
        out: dict[str, str] = {}
        for prices in reversed(self.token_priced.values()):
            out.update(prices.aliases)
        return out

    def hosted_model(self, name: str, provider: str | None = None) -> HostedModel:
        """The hosted model ``name`` (a dated snapshot, a short alias or an ``ft:`` id) as
        ``provider`` prices it; None: the first provider that prices it."""
        if provider is not None and provider not in self.token_priced:
            raise UnknownModel(
                f"provider {provider!r} declares no per-token prices; priced per token: "
                f"{known_list(set(self.token_priced))}"
            )
        candidates = [self.token_priced[provider]] if provider else self.token_priced.values()
        for prices in candidates:
            found = prices.models.get(prices.resolve(name))
            if found is not None:
                return found
        where = " / ".join(p.display_name for p in candidates) or "any provider's"
        known = set().union(*(set(p.models) | set(p.aliases) for p in candidates))
        table = provider or next(iter(self.token_priced), "NAME")
        key = self.token_priced[table].resolve(name) if table in self.token_priced else name
        raise UnknownModel(
            f"no {where} prices for model {name!r}; known: {known_list(known)}. "
            f'Add it to your prices file (settings prices_file) as [{table}.models."{key}"] '
            "with training, ft_input, ft_output, base_input and base_output (USD per 1M "
            "tokens)."
        )

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


def _mark_user_figures(raw: dict[str, Any], path: Path, priced: tuple[str, ...]) -> dict[str, Any]:
    """Point every figure of the user's file at a source naming that file. ``priced``:
    the providers whose tables (``[NAME.models."ID"]``) the file may override."""
    raw = copy.deepcopy(raw)
    as_of = raw.pop("as_of", None) or date.fromtimestamp(path.stat().st_mtime).isoformat()
    key = "user"
    raw.setdefault("sources", {})[key] = {"text": f"your prices file {path}", "as_of": str(as_of)}
    for name in priced:
        for model in raw.get(name, {}).get("models", {}).values():
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


def _build(raw: dict[str, Any], files: tuple[str, ...], declared: dict[str, PriceTable]) -> Catalog:
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

    try:
        priced = {
            name: _provider_prices(name, raw[name], table, src) for name, table in declared.items()
        }
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
            priced=priced,
            gpus=gpus,
            electricity_usd_per_kwh=float(raw["electricity"]["usd_per_kwh"]),
            electricity_source=src(raw["electricity"].get("source"), "electricity"),
            defaults=defaults,
            defaults_source=src(raw["defaults"].get("source"), "defaults"),
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


def _table_raw(table: PriceTable) -> dict[str, Any]:
    """A declared price table in the catalog's TOML shape, so the user's file merges over
    it key by key like over the shipped catalog."""
    models = {}
    for model_id, price in table.models.items():
        entry = {k: v for k, v in asdict(price).items() if v is not None}
        if "billable_token_limit" in entry:
            entry["token_limit"] = entry.pop("billable_token_limit")
        models[model_id] = entry
    out: dict[str, Any] = {"models": models, "aliases": dict(table.aliases)}
    if table.cache_min_prefix_tokens is not None:
        out["cache_min_prefix_tokens"] = table.cache_min_prefix_tokens
    return out


def _provider_prices(
    name: str, raw: dict[str, Any], table: PriceTable, src: Callable[[str | None, str], Source]
) -> ProviderPrices:
    """Provider ``name``'s prices (``raw``: its declared table with the user's overrides),
    with the retirement dates and job cutoff its lifecycle declares."""
    from app import lifecycle
    from app.jobs.providers import installed_classes

    cls = installed_classes().get(name)
    display_name = cls.display_name if cls is not None else name
    facts = lifecycle.facts(name)
    lifecycle_source = Source(
        f"{name}_lifecycle",
        f"{display_name}'s declared lifecycle ({facts.source or 'no source named'})",
        table.as_of,
    )
    cache_min = raw.get("cache_min_prefix_tokens")
    models = {}
    for mid, m in raw.get("models", {}).items():
        where = f"{name}.models.{mid!r}"
        retires = facts.retirements.get(mid)
        sunset = m.get("sunset") or retires
        models[mid] = HostedModel(
            id=mid,
            provider=name,
            training=float(m["training"]),
            ft_input=float(m["ft_input"]),
            ft_output=float(m["ft_output"]),
            base_input=float(m["base_input"]),
            base_output=float(m["base_output"]),
            ft_cached_input=_opt_float(m.get("ft_cached_input")),
            base_cached_input=_opt_float(m.get("base_cached_input")),
            token_limit=int(m.get("token_limit") or DEFAULT_TOKEN_LIMIT),
            sunset=_date(sunset, where + ".sunset") if sunset else None,
            source=src(m.get("source"), where),
            sunset_source=(
                src(m["sunset_source"], where)
                if m.get("sunset")
                else lifecycle_source
                if sunset
                else None
            ),
            cache_min_prefix_tokens=None if cache_min is None else int(cache_min),
            hosting_per_hour=_opt_float(m.get("hosting_per_hour")),
            training_full=_opt_float(m.get("training_full")),
        )
    return ProviderPrices(
        name=name,
        display_name=display_name,
        basis=table.basis,
        models=models,
        aliases=dict(raw.get("aliases", {})),
        note=table.note,
        service_cutoff=facts.job_creation_cutoff,
    )


def _declared_tables() -> dict[str, PriceTable]:
    from app.jobs.providers import price_tables

    return price_tables()


def _with_declared(raw: dict[str, Any], declared: dict[str, PriceTable]) -> dict[str, Any]:
    """The shipped catalog with each provider's declared table under its name and its
    sources added (a source key the catalog already uses is prefixed with the name)."""
    raw = copy.deepcopy(raw)
    sources = raw.setdefault("sources", {})
    for name, table in declared.items():
        table_raw = _table_raw(table)
        renamed = {}
        for key, source in table.sources.items():
            new_key = f"{name}_{key}" if key in sources else key
            renamed[key] = new_key
            sources[new_key] = {"text": source.text, "as_of": source.as_of.isoformat()}
        for model in table_raw["models"].values():
            model["source"] = renamed[model["source"]]
        raw[name] = table_raw
    return raw


@lru_cache(maxsize=8)
def _load_cached(
    user_file: str | None,
    mtime: float | None,
    search_path: tuple[str, ...],
    provider_order: tuple[str, ...],
) -> Catalog:
    """``search_path``: the import path the providers were discovered on (a plugin added
    at run time brings its prices). ``provider_order``: the priced providers in the order
    a lookup that names none tries them (the configured hosted one first, so it depends
    on settings): a catalog built under other settings is not reused."""
    declared = _declared_tables()
    raw = _with_declared(_read_toml(SHIPPED_CATALOG), declared)
    files = (str(SHIPPED_CATALOG),)
    if user_file:
        path = Path(user_file)
        raw = _merge(raw, _mark_user_figures(_read_toml(path), path, tuple(declared)))
        files += (str(path),)
    return _build(raw, files, declared)


def load_catalog(prices_file: Path | str | None = None, *, use_settings: bool = True) -> Catalog:
    """The shipped catalog merged with ``prices_file`` (default: settings ``prices_file``).

    Cached per file and modification time, so an edited file is re-read.
    """
    if prices_file is None and use_settings:
        from app.settings import get_settings

        prices_file = get_settings().prices_file
    order = tuple(_declared_tables())
    if prices_file is None:
        return _load_cached(None, None, tuple(sys.path), order)
    path = Path(prices_file).expanduser()
    if not path.exists():
        raise CatalogError(
            f"prices file {path} does not exist; fix settings prices_file or create it"
        )
    return _load_cached(str(path), path.stat().st_mtime, tuple(sys.path), order)
