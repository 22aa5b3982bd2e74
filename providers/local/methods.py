"""Which local training methods a base model supports, decided from its config.json (no
torch): the wizard offers only these, and the provider refuses the others before a job
starts, with the reason.

LoRA, QLoRA, DoRA and full fine-tuning work on any causal LM. IA3 scales the keys, values
and the feed-forward input: ftm names those modules by the Llama layout (k_proj, v_proj,
down_proj), so it needs a model of that layout. Prefix tuning prepends trained key/value
pairs to every layer's attention cache (``past_key_values``): a model without a KV cache
(a recurrent one) or without the attention shape PEFT reads cannot take them.
"""

from __future__ import annotations

import json
from pathlib import Path

from providers.local.model_shape import local_config_file

ADAPTER_METHODS = ("lora", "qlora", "dora", "ia3", "prefix")
"""Methods that train a PEFT adapter on a frozen base (everything but ``full``)."""
MERGEABLE = ("lora", "qlora", "dora", "ia3")
"""Adapters PEFT can fold into the base weights; prefix tuning's virtual tokens are
inputs to attention, not weights, so a prefix adapter cannot be merged."""
PREFIX_NOT_MERGEABLE = (
    "prefix tuning cannot be merged: its trained virtual tokens are extra attention inputs, "
    "not changes to the model's weights; evaluate or serve the adapter itself"
)

IA3_TARGETS = ("k_proj", "v_proj", "down_proj")
IA3_FEEDFORWARD = ("down_proj",)
LLAMA_LAYOUT = frozenset(
    {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "olmo", "olmo2"}
)
"""config.json ``model_type``s with the q/k/v/o + gate/up/down projection names."""
NO_KV_CACHE = frozenset({"mamba", "mamba2", "rwkv", "falcon_mamba", "xlstm"})
"""Recurrent architectures: no attention cache for prefix tuning to extend."""


def unsupported_methods(model: str | Path) -> dict[str, str]:
    """Methods ``model`` cannot train with, each with the reason. Empty when the model is
    not a local directory (a hub id: its config is not read here, PEFT decides)."""
    config_file = local_config_file(model)
    if config_file is None:
        return {}
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError:
        return {}  # model_shape reports an unreadable config with its own message
    config = config.get("text_config", config)
    model_type = str(config.get("model_type", "unknown"))
    out: dict[str, str] = {}
    if model_type not in LLAMA_LAYOUT:
        out["ia3"] = (
            f"IA3 scales the {', '.join(IA3_TARGETS)} modules of the Llama layout; this "
            f"model is a {model_type!r} (use lora or dora)"
        )
    has_attention = "num_attention_heads" in config and "num_hidden_layers" in config
    if model_type in NO_KV_CACHE or not has_attention or config.get("use_cache") is False:
        out["prefix"] = (
            f"prefix tuning extends every layer's attention cache (past_key_values); this "
            f"{model_type!r} model has none PEFT can extend (use lora or dora)"
        )
    return out


def supported_methods(model: str | Path, methods: tuple[str, ...]) -> tuple[str, ...]:
    """The subset of ``methods`` ``model`` supports (order kept)."""
    refused = unsupported_methods(model)
    return tuple(m for m in methods if m not in refused)
