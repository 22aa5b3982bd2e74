"""Per-request inference cost of each option.

hosted: (prompt x input + output x output price) / 1e6, the repeated prefix at the cached
price once it is long enough to be cached.
self-hosted: an always-on GPU costs its hourly price whether or not requests arrive; the
requests a GPU serves come from batched prefill and decode throughput at a chosen
utilization, and enough GPUs are kept to carry the expected traffic. A model too large for
one GPU is served tensor parallel on a group of them (``h100x2``), which serves as fast as
its GPUs' compute together.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

from app.costs.catalog import GPU, Catalog, no_priced_gpu_message
from app.costs.dataset_inputs import PromptProfile
from app.costs.errors import CostError, UnknownGPU
from app.costs.local_time import matmul_params
from app.costs.model_shapes import ModelShape


@dataclass(frozen=True)
class HostedRequestCost:
    model: str
    variant: str
    """"base few-shot" or "fine-tuned"."""
    prompt_tokens: float
    cached_prompt_tokens: float
    output_tokens: float
    usd_input_per_1m: float
    usd_cached_input_per_1m: float | None
    usd_output_per_1m: float
    usd_per_request: float
    price_source: str
    price_as_of: str

    def to_dict(self) -> dict:
        return asdict(self)


def hosted_request_cost(
    profile: PromptProfile,
    model: str,
    catalog: Catalog,
    *,
    fine_tuned: bool,
    provider: str | None = None,
) -> HostedRequestCost:
    """One request's cost on ``provider`` (None: the first that prices ``model``)."""
    p = catalog.hosted_model(model, provider)
    if fine_tuned:
        prompt, prefix = profile.prompt_tokens, profile.system_tokens
        inp, cached, out = p.ft_input, p.ft_cached_input, p.ft_output
    else:
        prompt, prefix = profile.few_shot_prompt_tokens, profile.few_shot_prefix_tokens
        inp, cached, out = p.base_input, p.base_cached_input, p.base_output
    caches = cached is not None and p.cache_min_prefix_tokens is not None
    cached_tokens = prefix if caches and prefix >= p.cache_min_prefix_tokens else 0.0
    usd = (
        (prompt - cached_tokens) * inp
        + cached_tokens * (cached or 0.0)
        + profile.output_tokens * out
    ) / 1e6
    return HostedRequestCost(
        model=p.id,
        variant="fine-tuned" if fine_tuned else f"base {profile.k}-shot",
        prompt_tokens=prompt,
        cached_prompt_tokens=cached_tokens,
        output_tokens=profile.output_tokens,
        usd_input_per_1m=inp,
        usd_cached_input_per_1m=cached,
        usd_output_per_1m=out,
        usd_per_request=usd,
        price_source=p.source.text,
        price_as_of=p.source.as_of.isoformat(),
    )


SERVING_HEADROOM = 1.2
"""bf16 weights plus 20% for the KV cache and activations."""


def serving_memory_bytes(shape: ModelShape) -> float:
    """What serving ``shape`` needs: its bf16 weights with room for the KV cache."""
    return 2.0 * shape.params * SERVING_HEADROOM


def gpu_set_name(gpu_key: str, count: int) -> str:
    """``h100`` for one GPU, ``h100x2`` for two: the spelling --serve-gpu takes."""
    return gpu_key if count == 1 else f"{gpu_key}x{count}"


def parse_gpu_set(text: str, catalog: Catalog) -> tuple[GPU, int]:
    """A catalog GPU and a count from ``h100`` or ``h100x2`` (case-insensitive).

    Raises `UnknownGPU` (listing the known ones) or `CostError` for a count under 1.
    """
    name = text.strip().lower()
    match = re.fullmatch(r"(.+?)\s*[x*]\s*(\d+)", name)
    if name in catalog.gpus or match is None:
        try:
            return catalog.gpu(name), 1
        except UnknownGPU as e:
            raise UnknownGPU(f"{e} For several GPUs write NAMExCOUNT, e.g. h100x2.") from None
    count = int(match.group(2))
    if count < 1:
        raise CostError(f"GPU count in {text!r} must be at least 1 (e.g. h100x2)")
    return catalog.gpu(match.group(1)), count


def gpus_to_hold(shape: ModelShape, gpu: GPU) -> int:
    """The smallest tensor-parallel group of ``gpu`` (1, 2, 4, 8, ...) that holds ``shape``."""
    count = 1
    while count * gpu.memory_bytes < serving_memory_bytes(shape):
        count *= 2
    return count


@dataclass(frozen=True)
class SelfHostedServing:
    """Serving one model on replicas of ``gpus_per_replica`` GPUs (tensor parallel)."""

    model: str
    gpu: str
    """The catalog key of one GPU."""
    gpus_per_replica: int
    gpu_set: str
    """What --serve-gpu takes for this choice: ``h100`` or ``h100x2``."""
    usd_per_hour: float
    """Per GPU."""
    price_source: str
    price_as_of: str
    prompt_tokens: float
    output_tokens: float
    prefill_tokens_per_second: float
    decode_tokens_per_second: float
    """Per replica (its GPUs' compute together)."""
    gpu_seconds_per_request: float
    """Seconds of one replica per request."""
    utilization: float
    requests_per_replica_month: float
    hours_per_month: float
    usd_per_1m_tokens: float
    """1e6 x $/hour x GPUs / (3600 x tokens/s x utilization), tokens/s over prompt and reply."""
    marginal_usd_per_request: float
    """The GPU time one request uses at the chosen utilization (no idle cost)."""
    memory_needed_gb: float
    warnings: tuple[str, ...] = ()

    def replicas_needed(self, requests_per_month: float) -> int:
        return max(1, math.ceil(requests_per_month / self.requests_per_replica_month))

    def gpus_needed(self, requests_per_month: float) -> int:
        return self.replicas_needed(requests_per_month) * self.gpus_per_replica

    def monthly_usd(self, requests_per_month: float) -> float:
        """Always-on cost of the GPUs the traffic needs."""
        return self.gpus_needed(requests_per_month) * self.usd_per_hour * self.hours_per_month

    def to_dict(self) -> dict:
        return asdict(self) | {"warnings": list(self.warnings)}


def self_hosted_serving(
    profile: PromptProfile,
    shape: ModelShape,
    gpu_set: str,
    catalog: Catalog,
    *,
    utilization: float | None = None,
    cloud: str | None = None,
) -> SelfHostedServing:
    """Serving ``shape`` on ``gpu_set`` (``h100`` or ``h100x2``, see `parse_gpu_set`)."""
    gpu, count = parse_gpu_set(gpu_set, catalog)
    price = catalog.hourly_price(gpu, cloud)
    util = utilization if utilization is not None else catalog.default("serving_utilization")
    if not 0 < util <= 1:
        raise CostError(f"utilization must be in (0, 1], got {util}")
    flops_per_token = 2.0 * matmul_params(shape)  # one forward pass
    prefill = count * gpu.peak_flops * catalog.default("serving_prefill_mfu") / flops_per_token
    decode = count * gpu.peak_flops * catalog.default("serving_decode_mfu") / flops_per_token
    seconds = profile.prompt_tokens / prefill + profile.output_tokens / decode
    hours = catalog.default("hours_per_month")
    tokens = profile.prompt_tokens + profile.output_tokens
    need = serving_memory_bytes(shape)
    warnings = []
    if count * gpu.memory_bytes < need:
        fits = gpu_set_name(gpu.key, gpus_to_hold(shape, gpu))
        warnings.append(
            f"serving needs about {need / 1e9:.0f} GB; {count} x {gpu.key} hold "
            f"{count * gpu.memory_gb:g} GB: it will not fit; --serve-gpu {fits} does"
        )
    return SelfHostedServing(
        model=shape.name,
        gpu=gpu.key,
        gpus_per_replica=count,
        gpu_set=gpu_set_name(gpu.key, count),
        usd_per_hour=price.usd_per_hour,
        price_source=price.source.text,
        price_as_of=price.source.as_of.isoformat(),
        prompt_tokens=profile.prompt_tokens,
        output_tokens=profile.output_tokens,
        prefill_tokens_per_second=prefill,
        decode_tokens_per_second=decode,
        gpu_seconds_per_request=seconds,
        utilization=util,
        requests_per_replica_month=hours * 3600 * util / seconds,
        hours_per_month=hours,
        usd_per_1m_tokens=1e6 * price.usd_per_hour * count / (3600 * (tokens / seconds) * util),
        marginal_usd_per_request=seconds * price.usd_per_hour * count / 3600 / util,
        memory_needed_gb=need / 1e9,
        warnings=tuple(warnings),
    )


def serving_gpu_for(shape: ModelShape, catalog: Catalog, cloud: str | None = None) -> str:
    """The cheapest catalog GPU set (not the CPU; priced in ``cloud`` when given) that holds
    the bf16 weights with 20% room for the KV cache: one GPU when one is enough, else a
    tensor-parallel group, e.g. ``h200x2``. Returns what --serve-gpu takes."""
    candidates = [
        (g, gpus_to_hold(shape, g))
        for g in catalog.gpus.values()
        if g.key != "cpu"
        and g.prices
        and (cloud is None or any(p.cloud == cloud for p in g.prices))
    ]
    if not candidates:
        raise CostError(no_priced_gpu_message(catalog, cloud))
    gpu, count = min(
        candidates, key=lambda c: (c[1] * catalog.hourly_price(c[0], cloud).usd_per_hour, c[1])
    )
    return gpu_set_name(gpu.key, count)
