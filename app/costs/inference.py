"""Per-request inference cost of each option.

hosted: (prompt x input + output x output price) / 1e6, the repeated prefix at the cached
price once it is long enough to be cached.
self-hosted: an always-on GPU costs its hourly price whether or not requests arrive; the
requests a GPU serves come from batched prefill and decode throughput at a chosen
utilization, and enough GPUs are kept to carry the expected traffic.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from app.costs.catalog import Catalog
from app.costs.dataset_inputs import PromptProfile
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


def hosted_request_cost(profile: PromptProfile, model: str, catalog: Catalog, *,
                        fine_tuned: bool) -> HostedRequestCost:
    p = catalog.hosted_model(model)
    if fine_tuned:
        prompt, prefix = profile.prompt_tokens, profile.system_tokens
        inp, cached, out = p.ft_input, p.ft_cached_input, p.ft_output
    else:
        prompt, prefix = profile.few_shot_prompt_tokens, profile.few_shot_prefix_tokens
        inp, cached, out = p.base_input, p.base_cached_input, p.base_output
    cached_tokens = prefix if cached is not None and prefix >= catalog.cache_min_prefix_tokens else 0.0
    usd = ((prompt - cached_tokens) * inp + cached_tokens * (cached or 0.0)
           + profile.output_tokens * out) / 1e6
    return HostedRequestCost(
        model=p.id, variant="fine-tuned" if fine_tuned else f"base {profile.k}-shot",
        prompt_tokens=prompt, cached_prompt_tokens=cached_tokens,
        output_tokens=profile.output_tokens, usd_input_per_1m=inp,
        usd_cached_input_per_1m=cached, usd_output_per_1m=out, usd_per_request=usd,
        price_source=p.source.text, price_as_of=p.source.as_of.isoformat(),
    )


@dataclass(frozen=True)
class SelfHostedServing:
    model: str
    gpu: str
    usd_per_hour: float
    price_source: str
    price_as_of: str
    prompt_tokens: float
    output_tokens: float
    prefill_tokens_per_second: float
    decode_tokens_per_second: float
    gpu_seconds_per_request: float
    utilization: float
    requests_per_gpu_month: float
    hours_per_month: float
    usd_per_1m_tokens: float
    """1e6 x $/hour / (3600 x tokens/s x utilization), tokens/s over prompt and reply."""
    marginal_usd_per_request: float
    """The GPU time one request uses at the chosen utilization (no idle cost)."""

    def gpus_needed(self, requests_per_month: float) -> int:
        return max(1, math.ceil(requests_per_month / self.requests_per_gpu_month))

    def monthly_usd(self, requests_per_month: float) -> float:
        """Always-on cost of the GPUs the traffic needs."""
        return self.gpus_needed(requests_per_month) * self.usd_per_hour * self.hours_per_month

    def to_dict(self) -> dict:
        return asdict(self)


def self_hosted_serving(profile: PromptProfile, shape: ModelShape, gpu_key: str, catalog: Catalog,
                        *, utilization: float | None = None, cloud: str | None = None
                        ) -> SelfHostedServing:
    gpu = catalog.gpu(gpu_key)
    price = catalog.hourly_price(gpu, cloud)
    util = utilization if utilization is not None else catalog.default("serving_utilization")
    if not 0 < util <= 1:
        from app.costs.errors import CostError

        raise CostError(f"utilization must be in (0, 1], got {util}")
    flops_per_token = 2.0 * matmul_params(shape)  # one forward pass
    prefill = gpu.peak_flops * catalog.default("serving_prefill_mfu") / flops_per_token
    decode = gpu.peak_flops * catalog.default("serving_decode_mfu") / flops_per_token
    seconds = profile.prompt_tokens / prefill + profile.output_tokens / decode
    hours = catalog.default("hours_per_month")
    tokens = profile.prompt_tokens + profile.output_tokens
    return SelfHostedServing(
        model=shape.name, gpu=gpu.key, usd_per_hour=price.usd_per_hour,
        price_source=price.source.text, price_as_of=price.source.as_of.isoformat(),
        prompt_tokens=profile.prompt_tokens, output_tokens=profile.output_tokens,
        prefill_tokens_per_second=prefill, decode_tokens_per_second=decode,
        gpu_seconds_per_request=seconds, utilization=util,
        requests_per_gpu_month=hours * 3600 * util / seconds, hours_per_month=hours,
        usd_per_1m_tokens=1e6 * price.usd_per_hour / (3600 * (tokens / seconds) * util),
        marginal_usd_per_request=seconds * price.usd_per_hour / 3600 / util,
    )


def serving_gpu_for(shape: ModelShape, catalog: Catalog) -> str:
    """The cheapest catalog GPU (not the CPU) that holds the bf16 weights with 20% room
    for the KV cache."""
    need = 2.0 * shape.params * 1.2
    candidates = [g for g in catalog.gpus.values()
                  if g.key != "cpu" and g.memory_bytes >= need and g.prices]
    if not candidates:
        from app.costs.errors import CostError

        raise CostError(f"no catalog GPU holds {shape.name} for serving (about {need / 1e9:.0f} "
                        "GB); pass --serve-gpu with a GPU count, or add a larger GPU")
    return min(candidates, key=lambda g: catalog.hourly_price(g).usd_per_hour).key
