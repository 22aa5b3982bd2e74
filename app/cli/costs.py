"""`ftm estimate` (the side-by-side cost table) and `ftm prices` (the price catalog)."""

from __future__ import annotations

import json
from datetime import date

import click

from app.cli.errors import UserError
from app.cli.tables import Column

# Names that are hosted models even when no provider prices them (a clear "no prices"
# error beats "not a local model directory").
HOSTED_PREFIXES = ("gpt-", "ft:", "o1", "o3", "o4", "davinci", "babbage")


class PricedProvider(click.Choice):
    """``--provider``: an installed provider that declares prices (`Provider.pricing`), or
    ``all``. Asked of the registry when the option is used or its help shown, so the
    CLI starts without loading any provider."""

    def __init__(self) -> None:
        super().__init__([])

    @property  # type: ignore[override]
    def choices(self) -> list[str]:
        from app.costs.compare import price_scopes

        return price_scopes()

    @choices.setter
    def choices(self, value: object) -> None:
        pass  # click's __init__ sets them; ours always come from the registry


def _usd(value: float | None) -> str:
    from app.costs.money import usd

    return usd(value)


def _count(value: float | None) -> str:
    return "never" if value is None else f"{value:,.0f}"


@click.command("estimate")
@click.argument("dataset")
@click.option(
    "--provider",
    type=PricedProvider(),
    default="all",
    show_default=True,
    help="Which provider's options to price (any installed provider that declares prices).",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    help="A model to price (repeatable): a hosted provider's model, a hub id or a local "
    "model directory. Default: gpt-4o-mini and Llama-3.1-8B.",
)
@click.option(
    "--baseline", help="The base model of the few-shot baseline (default: the first hosted model)."
)
@click.option(
    "--method",
    type=click.Choice(["lora", "qlora", "dora", "ia3", "prefix", "full"]),
    default="qlora",
    show_default=True,
    help="Local fine-tuning method (dora, ia3, prefix: PEFT adapters on a frozen base).",
)
@click.option("--gpu", help="Train locally on this catalog GPU (default: the cheapest it fits).")
@click.option("--gpus", "n_gpu", type=int, default=1, show_default=True, help="GPUs to train on.")
@click.option("--cloud", help="Use this cloud's $/hour (default: the cheapest listed).")
@click.option(
    "--serve-gpu",
    help="Serve the local model on this GPU, or on several with "
    "NAMExCOUNT, e.g. h100x2 (default: the cheapest set that "
    "holds it).",
)
@click.option("--utilization", type=float, help="Average share of serving capacity in use.")
@click.option("--rank", type=int, default=16, show_default=True, help="LoRA rank.")
@click.option(
    "--targets",
    default="all-linear",
    show_default=True,
    help="LoRA target modules: all-linear, attention, or q_proj,v_proj,...",
)
@click.option("--seq-len", type=int, default=2048, show_default=True)
@click.option("--batch", type=int, default=1, show_default=True, help="Micro-batch per GPU.")
@click.option("--packing/--no-packing", default=False, show_default=True)
@click.option(
    "--checkpointing/--no-checkpointing",
    default=True,
    show_default=True,
    help="Gradient checkpointing.",
)
@click.option("--epochs", type=int, help="Epochs (default: auto when hosted, 3 locally).")
@click.option(
    "--requests-per-month",
    type=float,
    help="Price at this traffic (a what-if). Default: the traffic the gateway measured "
    "for the dataset's task over --window-days, else 10,000.",
)
@click.option(
    "--task",
    help="Measure the traffic of this task (default: the tasks evaluated on DATASET).",
)
@click.option(
    "--window-days",
    type=click.FloatRange(min=1),
    default=30,
    show_default=True,
    help="Measure traffic over the last N days of the gateway log.",
)
@click.option("--horizon-months", type=float, default=12, show_default=True)
@click.option(
    "--k",
    "k",
    type=int,
    help="Few-shot examples in the baseline prompt (default: measured on the dataset).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
def estimate(
    dataset: str,
    provider: str,
    models: tuple[str, ...],
    baseline: str | None,
    method: str,
    gpu: str | None,
    n_gpu: int,
    cloud: str | None,
    serve_gpu: str | None,
    utilization: float | None,
    rank: int,
    targets: str,
    seq_len: int,
    batch: int,
    packing: bool,
    checkpointing: bool,
    epochs: int | None,
    requests_per_month: float | None,
    task: str | None,
    window_days: float,
    horizon_months: float,
    k: int | None,
    as_json: bool,
) -> None:
    """Price every option for DATASET side by side: hosted and local training, inference
    per request against the base model with few-shot examples, and the break-even.

    Traffic: a --requests-per-month you give wins; without one, the requests/month and the
    prompt and reply sizes the gateway (`ftm serve`) measured for the task, when it has
    any; else 10,000 requests/month, assumed. The output says which."""
    from app.costs.catalog import load_catalog
    from app.costs.compare import compare
    from app.costs.dataset_inputs import find_dataset
    from app.costs.errors import CostError
    from app.costs.local_memory import LocalTrainingConfig
    from app.costs.model_shapes import resolve_targets
    from app.costs.traffic import tasks_of_dataset, traffic_for
    from app.database import get_engine
    from db.engine import read_session

    try:
        catalog = load_catalog()
        hosted = [m for m in models if catalog.is_hosted(m) or m.startswith(HOSTED_PREFIXES)]
        local = [m for m in models if m not in hosted]
        cfg = LocalTrainingConfig(
            method=method,
            rank=rank,
            targets=resolve_targets(targets),
            seq_len=seq_len,
            micro_batch=batch,
            packing=packing,
            gradient_checkpointing=checkpointing,
            n_gpu=n_gpu,
            epochs=epochs or 3,
        )
        engine = get_engine()
        with read_session(engine) as session:
            ds = find_dataset(session, dataset)
            traffic = traffic_for(
                engine,
                given=requests_per_month,
                task=task or tasks_of_dataset(engine, ds.id),
                window_days=window_days,
            )
            result = compare(
                session,
                ds,
                provider=provider,
                hosted_models=hosted or None,
                local_models=local or None,
                baseline_model=baseline,
                local_config=cfg,
                gpu=gpu,
                cloud=cloud,
                serve_gpu=serve_gpu,
                utilization=utilization,
                horizon_months=horizon_months,
                k=k,
                n_epochs=epochs if epochs else "auto",
                catalog=catalog,
                traffic=traffic,
            )
    except CostError as e:
        raise UserError(str(e)) from None
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
        return
    _print_comparison(result)


def _estimate_columns(horizon_months: float) -> list[Column]:
    """The option stays readable at 80 columns (>= 30 cells: "* gpt-4o-mini-2024-07-18
    fine-tu…"); the monthly figure goes first, the horizon total says the same."""
    return [
        Column("option", min_width=30, cut="end"),
        Column("one-time", align="right"),
        Column("per 1k req", align="right"),
        Column("monthly", priority=2, align="right"),
        Column(f"{horizon_months:g} months", align="right"),
        Column("break-even", priority=1, align="right"),
    ]


def _print_comparison(result) -> None:
    from app.cli.tables import console as console_for_tables
    from app.cli.tables import print_table
    from app.costs.traffic import Traffic

    console = console_for_tables()
    rpm = result.requests_per_month
    p = result.profile
    title = (
        f"{result.dataset['name']}: {result.dataset['train_examples']:,} training "
        f"examples, {rpm:,.0f} requests/month"
    )
    rows = []
    for o in result.options:
        be = "baseline" if o.kind == "baseline" else _count(o.break_even_requests)
        if o.break_even_months is not None:
            be += f" ({o.break_even_months:.1f} mo)"
        name = ("* " if o.key == result.cheapest else "  ") + o.label
        rows.append(
            [
                name,
                _usd(o.one_time_usd),
                _usd(o.per_request_usd * 1000),
                _usd(o.monthly_usd),
                _usd(o.horizon_usd) + o.stop_mark,
                be,
            ]
        )
    print_table(_estimate_columns(result.horizon_months), rows, title=title)
    console.print(Traffic(**result.traffic).describe(), markup=False)
    where = (
        "prompt and reply from the gateway log"
        if result.traffic["source"] == "measured"
        else f"measured on {p['sampled']} examples"
    )
    console.print(
        f"Request shape ({where}): prompt "
        f"{p['prompt_tokens']:.0f} tokens, reply {p['output_tokens']:.0f}; baseline adds "
        f"k={p['k']} examples of ~{p['shot_tokens']:.0f} tokens ({p['k_reason']})."
    )
    for o in result.options:
        t = o.training
        if o.kind == "hosted":
            console.print(
                f"[bold]{o.label}[/]: {t['billable_tokens']:,} billable tokens = "
                f"sum(min({t['token_limit']:,}, tokens)) x {t['epochs']} epochs ({t['epochs_rule']}) "
                f"x {_usd(t['usd_per_1m_tokens'])}/1M; prices as of {t['price_as_of']}"
            )
        elif o.kind != "baseline":  # the self-hosted option
            m, inf = t["memory"], o.inference
            fits = ", ".join(f["gpu"] for f in t["fits"] if f["fits"]) or "none"
            console.print(
                f"[bold]{o.label}[/]: {m['text']} per device; fits: {fits}. {t['tokens']['trained']:,} tokens x "
                f"{t['flops_per_token']:.3g} FLOPs/token at MFU {t['calibration']['mfu']:.2f} "
                f"({t['calibration']['source']}) = {t['hours']:.2f} h x {_usd(t['usd_per_hour'])}/h "
                f"({t['price_cloud']}, as of {t['price_as_of']}); {t['tokenizer_note']}. Serving: "
                f"{inf['gpus_needed']} x {inf['gpu']} always on, {_usd(inf['usd_per_1m_tokens'])}/1M "
                f"tokens at {inf['utilization']:.0%} utilization."
            )
        for w in o.warnings:
            console.print(f"  [yellow]{o.label}: {w}[/]")
    cat = result.catalog
    if result.stopping:
        console.print(f"(mN): stops serving in month N; {result.horizon_rule}.", markup=False)
    console.print(result.verdict(), markup=False)
    console.print(f"Prices as of {cat['as_of']} ({cat['age_days']} days old); see `ftm prices`.")


# Model ids stay whole (22 cells: gpt-4o-mini-2024-07-18); at 80 columns the base-model
# prices and the per-model dates give way (the catalog's date is printed above).
PRICE_COLUMNS = [
    Column("model"),  # whole: ids are copied into commands
    Column("training", align="right"),
    Column("ft in / cached / out", priority=1),
    Column("base in / cached / out", priority=2),
    Column("sunset"),
    Column("as of", priority=3, min_width=10),
]
# The first listed price (the cheapest cloud) is the one a cut keeps.
GPU_COLUMNS = [
    Column("key"),
    Column("name", priority=2, min_width=12),
    Column("bf16 TFLOP/s", priority=3, align="right"),
    Column("memory GB", priority=1, align="right"),
    Column("TB/s", priority=3, align="right"),
    Column("$/hour (cloud, as of)", min_width=30),
]


@click.command("prices")
@click.option("--json", "as_json", is_flag=True, help="Print the catalog as JSON.")
def prices(as_json: bool) -> None:
    """Show the price catalog: every installed provider's declared prices, base-model
    sunsets and GPU types, with each figure's source and age (override with settings
    prices_file)."""
    from app.costs.catalog import load_catalog
    from app.costs.errors import CostError

    try:
        catalog = load_catalog()
    except CostError as e:
        raise UserError(str(e)) from None
    from app import lifecycle

    today = lifecycle.today()
    if as_json:
        click.echo(json.dumps(_catalog_dict(catalog, today), indent=2, default=str))
        return
    from app.cli.tables import console as console_for_tables
    from app.cli.tables import print_table

    console = console_for_tables()
    console.print(
        f"Price catalog as of {catalog.as_of} ({catalog.age_days(today)} days old); "
        f"files: {', '.join(catalog.files)}"
    )
    for name, priced in catalog.priced.items():
        if priced.basis != "tokens":
            console.print(f"{priced.display_name} ({name}): priced {priced.note}.", markup=False)
            continue
        cutoff = lifecycle.creation_cutoff(name, today)
        if cutoff is not None:
            console.print(cutoff.message, markup=False)
        print_table(
            PRICE_COLUMNS,
            [
                [
                    m.id,
                    f"{m.training:g}",
                    f"{m.ft_input:g} / {_opt(m.ft_cached_input)} / {m.ft_output:g}"
                    + (f" + ${m.hosting_per_hour:g}/h hosted" if m.hosting_per_hour else ""),
                    f"{m.base_input:g} / {_opt(m.base_cached_input)} / {m.base_output:g}",
                    str(_retires(m, today) or "-"),
                    f"{m.source.as_of} ({(today - m.source.as_of).days} d)",
                ]
                for m in priced.models.values()
            ],
            title=f"{priced.display_name}, USD per 1M tokens",
        )
    gpu_rows = []
    for gpu in catalog.gpus.values():
        listed = [f"{p.usd_per_hour:g} ({p.cloud}, {p.source.as_of})" for p in gpu.prices]
        if not listed:
            own = catalog.hourly_price(gpu)
            listed = [f"{own.usd_per_hour:.3f} (electricity, {gpu.watts:g} W)"]
        gpu_rows.append(
            [
                gpu.key,
                gpu.name,
                f"{gpu.tflops_bf16:g}",
                f"{gpu.memory_gb:g}",
                f"{gpu.bandwidth_tbs:g}",
                "; ".join(listed),
            ]
        )
    print_table(GPU_COLUMNS, gpu_rows, title="GPUs")
    console.print("Sources:")
    for s in catalog.sources.values():
        console.print(f"  {s.key}: {s.text} (as of {s.as_of}, {(today - s.as_of).days} days old)")


def _retires(model, today: date) -> date | None:
    """The lifecycle service's retirement date; a prices file's own ``sunset`` for a model
    the provider does not list."""
    from app import lifecycle

    found = lifecycle.retirement(model.provider, model.id, today=today)
    return found.retires if found else model.sunset


def _opt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _catalog_dict(catalog, today: date) -> dict:
    from dataclasses import asdict

    return {
        "as_of": catalog.as_of,
        "age_days": catalog.age_days(today),
        "files": catalog.files,
        "providers": {
            name: {
                "display_name": p.display_name,
                "basis": p.basis,
                "note": p.note,
                "service_cutoff": p.service_cutoff,
                "models": {k: asdict(v) for k, v in p.models.items()},
                "aliases": p.aliases,
            }
            for name, p in catalog.priced.items()
        },
        "gpus": {
            k: asdict(v) | {"usd_per_hour": catalog.hourly_price(v).usd_per_hour}
            for k, v in catalog.gpus.items()
        },
        "electricity_usd_per_kwh": catalog.electricity_usd_per_kwh,
        "defaults": catalog.defaults,
        "sources": {k: asdict(v) for k, v in catalog.sources.items()},
    }


@click.group("costs")
def costs() -> None:
    """What serving costs, measured: per alias this month (`ftm costs aliases`)."""


ALIAS_COLUMNS = [
    Column("alias", min_width=22, cut="middle"),  # whole where it can be: it is copied
    Column("requests", align="right"),
    Column("tokens", priority=2, align="right"),
    Column("hours", priority=2, align="right"),
    Column("total", align="right"),
    Column("per 1k req", align="right"),
    Column("break-even", priority=1, align="right"),
]


@costs.command("aliases")
@click.option("--task", help="Only this task's aliases.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def costs_aliases(task: str | None, as_json: bool) -> None:
    """Each TASK:ALIAS's cost this calendar month: requests served through `ftm serve`,
    token cost from the request log, deployment hours, cost per 1,000 requests, and the
    break-even against the few-shot baseline recomputed on the actual traffic."""
    from app.cli.tables import console as console_for_tables
    from app.cli.tables import print_table
    from app.costs.alias_costs import alias_costs
    from app.database import get_engine

    result = alias_costs(get_engine(), task=task)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
        return
    console = console_for_tables()
    if not result.aliases and not result.unattributed:
        console.print(
            f"No gateway traffic or running deployment in {result.month}"
            + (f" for task {task}" if task else "")
            + "; serve an alias with `ftm serve` to measure it.",
            markup=False,
        )
        return
    rows = [
        [
            a.name,
            f"{a.requests:,}",
            _usd(a.token_usd),
            _usd(a.deployment_usd),
            _usd(a.total_usd),
            _usd(a.per_1k_usd),
            _break_even_cell(a.break_even),
        ]
        for a in result.aliases
    ]
    print_table(
        ALIAS_COLUMNS,
        rows,
        title=f"Cost per alias in {result.month} (to {result.now:%Y-%m-%d %H:%M} UTC)",
    )
    for a in result.aliases:
        facts = [f"held by {a.holder}" if a.holder else "no holder now"]
        if a.requests_per_month is not None:
            facts.append(f"{a.requests_per_month:,.0f} requests/month measured")
        if a.shadow_usd:
            facts.append(f"{_usd(a.shadow_usd)} of the tokens on shadow copies")
        for d in a.deployments:
            share = "" if d["share"] == 1 else f", {d['share']:.0%} of it"
            facts.append(
                f"deployment {d['id']} {d['hours']:.1f} h x {_usd(d['usd_per_hour'])}/h{share}"
            )
        if a.break_even is not None:
            facts.append(f"break-even: {a.break_even.note}")
        console.print(f"{a.name}: " + "; ".join(facts) + ".", markup=False)
    for d in result.unattributed:
        console.print(
            f"Deployment {d['id']} ({d['provider']} {d['model']}) served no alias this "
            f"month: {_usd(d['usd'])} for {d['hours']:.1f} h; see `ftm deployments list`.",
            markup=False,
        )


def _break_even_cell(found) -> str:
    if found is None or found.requests is None:
        return "never" if found is not None and found.note.startswith("never") else "-"
    cell = _count(found.requests)
    return cell + (f" ({found.months:.1f} mo)" if found.months is not None else "")
