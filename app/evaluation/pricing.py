"""Per-request inference prices for eval results, from the price catalog of app.costs
(app/costs/catalog.toml, overridable with settings ``prices_file``) — never from code.

Hosted OpenAI models are priced per token: base prices for a base model, fine-tuned
prices for an ``ft:`` model (and its checkpoints), keyed by the base snapshot in its name.
A local model has no per-token price: `per_request_cost` prices it as self-hosted, the
GPU time its measured prompt and reply take on the cheapest catalog GPU that holds it
(`app.costs.inference`). An unknown hosted id costs ``None``: the
comparison says "no price" rather than pretend it is free.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TokenPrice:
    """USD per 1M tokens."""

    input: float
    output: float
    model: str
    fine_tuned: bool
    source: str


def base_of(model: str) -> str:
    """The base snapshot of an OpenAI model id: ``ft:gpt-4o-mini-2024-07-18:org:x:id`` ->
    ``gpt-4o-mini-2024-07-18``; a base id is its own base."""
    return model.split(":")[1] if model.startswith("ft:") else model


def canonical_model(model: str | None) -> str | None:
    """A short OpenAI name resolved to its snapshot (gpt-4o-mini -> gpt-4o-mini-2024-07-18),
    so a base evaluated by its short name matches a fine-tune's base."""
    if model is None:
        return None
    from app.costs.catalog import load_catalog

    return load_catalog().aliases.get(model, model)


def token_price(provider: str, model: str, base_model: str | None = None) -> TokenPrice | None:
    """The per-token price of ``model`` on ``provider``, or None when not in the catalog.
    A fine-tune whose id the catalog does not know (one not named ``ft:BASE:...``, e.g.
    Together's ``account/Base-suffix-id``) is priced at its ``base_model``'s fine-tuned
    rates when that base is known."""
    from app.jobs.providers import capabilities_of

    if not capabilities_of(provider).per_token_billing:
        return None
    from app.costs.catalog import load_catalog
    from app.costs.errors import UnknownModel

    fine_tuned = model.startswith("ft:")
    try:
        entry = load_catalog().hosted_model(model, provider)
    except UnknownModel:
        if not base_model or base_model == model:
            return None
        try:
            entry = load_catalog().hosted_model(base_model, provider)
        except UnknownModel:
            return None
        fine_tuned = True
    return TokenPrice(
        input=entry.ft_input if fine_tuned else entry.base_input,
        output=entry.ft_output if fine_tuned else entry.base_output,
        model=entry.id,
        fine_tuned=fine_tuned,
        source=f"{entry.source.text} (as of {entry.source.as_of.isoformat()})",
    )


def request_cost(
    provider: str,
    model: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    *,
    base_model: str | None = None,
) -> float | None:
    """USD for one request with these token counts; None when unpriced or uncounted."""
    price = token_price(provider, model, base_model)
    if price is None or prompt_tokens is None or completion_tokens is None:
        return None
    return (prompt_tokens * price.input + completion_tokens * price.output) / 1e6


def hosting_per_hour(provider: str, base_model: str | None) -> float | None:
    """What a fine-tune of ``base_model`` on ``provider`` costs per hour to keep answering,
    used or not, or None when nothing is billed by the hour (or it is not priced): the
    declared fee of the deployment it answers from, or, for a provider that runs models
    on this machine's kind of hardware (``capabilities.runs_locally``), the GPUs one
    serving replica needs (`self_hosted_per_hour`)."""
    if not base_model:
        return None
    from app.costs.catalog import load_catalog
    from app.costs.errors import UnknownModel
    from app.jobs.providers import capabilities_of

    if capabilities_of(provider).runs_locally:
        return self_hosted_per_hour(base_model)
    try:
        return load_catalog().hosted_model(base_model, provider).hosting_per_hour or None
    except UnknownModel:
        return None


def self_hosted_per_hour(base_model: str) -> float | None:
    """The hourly price of the GPUs one replica serving ``base_model`` (or an adapter on
    it) needs, on the cheapest catalog GPU set that holds it: the always-on cost of
    self-hosting. None when the model or a priced GPU is unknown."""
    from app.costs.catalog import load_catalog
    from app.costs.errors import CostError
    from app.costs.inference import parse_gpu_set, serving_gpu_for
    from app.costs.model_shapes import model_shape

    try:
        catalog = load_catalog()
        gpu, count = parse_gpu_set(serving_gpu_for(model_shape(base_model), catalog), catalog)
        return catalog.hourly_price(gpu).usd_per_hour * count
    except CostError:
        return None


def per_request_cost(run) -> tuple[float | None, str | None]:
    """USD per request of an eval run's candidate, and the basis when it is modelled.

    Hosted: the mean billed cost of its task requests (measured token counts x catalog
    prices). Local: the GPU time of a request with the run's mean prompt and reply
    lengths, served on the cheapest catalog GPU that holds the base model, at the
    catalog's serving utilization (`self_hosted_request_cost`); the always-on cost of
    that GPU is a matter of traffic, left to `ftm estimate`.
    """
    task = (run.summary or {}).get("task") or {}
    cost = task.get("cost_per_request_usd")
    from app.jobs.providers import capabilities_of

    if cost is not None or not capabilities_of(run.provider).runs_locally:
        return cost, None
    prompt, reply = task.get("mean_prompt_tokens"), task.get("mean_completion_tokens")
    if prompt is None or reply is None:
        return None, "no token counts recorded for its requests"
    candidate = (run.config or {}).get("candidate") or {}
    return self_hosted_request_cost(candidate.get("base_model") or run.model, prompt, reply)


def self_hosted_request_cost(
    base_model: str, prompt_tokens: float, output_tokens: float
) -> tuple[float | None, str]:
    """The GPU cost of one request to ``base_model`` (or an adapter on it) self-hosted,
    with the basis in words, or None and why not."""
    from app.costs.catalog import load_catalog
    from app.costs.dataset_inputs import PromptProfile
    from app.costs.errors import CostError
    from app.costs.inference import self_hosted_serving, serving_gpu_for
    from app.costs.model_shapes import model_shape
    from app.costs.money import usd

    try:
        shape = model_shape(base_model)
        catalog = load_catalog()
        gpu = serving_gpu_for(shape, catalog)
        profile = PromptProfile(
            sampled=0,
            system_tokens=0.0,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
            shot_tokens=0.0,
            k=0,
            k_reason="measured on the eval",
        )
        serving = self_hosted_serving(profile, shape, gpu, catalog)
    except CostError as exc:
        return None, f"no self-hosted price: {exc}"
    return serving.marginal_usd_per_request, (
        f"self-hosted on {serving.gpu_set} at {serving.utilization:.0%} utilization: GPU time "
        f"per request at {usd(serving.usd_per_hour)}/h per GPU ({serving.price_source}, as of "
        f"{serving.price_as_of}); always-on cost not included"
    )
