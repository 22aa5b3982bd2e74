"""A model's shape (layers, widths, vocabulary) and the parameter counts derived from it.

Read from the model's ``config.json`` — a local directory, or the table of common hub
models in ``known_models.toml`` — never guessed. The counts assume the Llama family's
layout (q/k/v/o attention projections and a gated MLP), which covers Llama, Mistral,
Qwen2, Gemma and Phi-3; norms and biases are ignored (well under 0.1% of parameters).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

from app.costs.errors import UnknownModel, known_list

KNOWN_MODELS_FILE = Path(__file__).with_name("known_models.toml")

# LoRA target module names (PEFT's names for the Llama layout) -> (d_in, d_out) getter.
ATTENTION_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_MODULES = ("gate_proj", "up_proj", "down_proj")
ALL_LINEAR = ATTENTION_MODULES + MLP_MODULES


@dataclass(frozen=True)
class ModelShape:
    name: str
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    head_dim: int
    source: str
    """Where the shape came from: a config.json path or the known-model table."""

    def projection(self, module: str) -> tuple[int, int]:
        """(d_in, d_out) of one linear projection."""
        d, q = self.hidden_size, self.num_attention_heads * self.head_dim
        kv = self.num_key_value_heads * self.head_dim
        ffn = self.intermediate_size
        shapes = {
            "q_proj": (d, q), "k_proj": (d, kv), "v_proj": (d, kv), "o_proj": (q, d),
            "gate_proj": (d, ffn), "up_proj": (d, ffn), "down_proj": (ffn, d),
        }
        try:
            return shapes[module]
        except KeyError:
            raise UnknownModel(
                f"unknown LoRA target module {module!r}; known: {known_list(set(shapes))} "
                "or 'all-linear'"
            ) from None

    @property
    def linear_params(self) -> int:
        """N_lin: parameters in the transformer blocks' linear layers."""
        per_layer = sum(i * o for i, o in map(self.projection, ALL_LINEAR))
        return per_layer * self.num_hidden_layers

    @property
    def embedding_params(self) -> int:
        """N_emb: the input embedding plus the output head (once when tied)."""
        return self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)

    @property
    def params(self) -> int:
        """N: all parameters."""
        return self.linear_params + self.embedding_params

    def lora_params(self, rank: int, targets: tuple[str, ...]) -> int:
        """N_T: layers x sum over targeted projections of r x (d_in + d_out)."""
        per_layer = sum(rank * (i + o) for i, o in map(self.projection, targets))
        return per_layer * self.num_hidden_layers

    def to_dict(self) -> dict:
        return asdict(self) | {"params": self.params, "linear_params": self.linear_params,
                               "embedding_params": self.embedding_params}


def resolve_targets(targets: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """Normalize LoRA target modules: 'all-linear' (default), 'attention', or names."""
    if targets is None or targets in ("all-linear", "all"):
        return ALL_LINEAR
    if targets == "attention":
        return ATTENTION_MODULES
    if isinstance(targets, str):
        targets = tuple(t.strip() for t in targets.split(",") if t.strip())
    return tuple(targets)


def _from_config(config: dict, name: str, source: str) -> ModelShape:
    # Multimodal and some newer configs nest the language model's settings.
    config = config.get("text_config", config)
    try:
        d = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
        return ModelShape(
            name=name, hidden_size=d, num_hidden_layers=int(config["num_hidden_layers"]),
            num_attention_heads=heads,
            num_key_value_heads=int(config.get("num_key_value_heads") or heads),
            intermediate_size=int(config["intermediate_size"]),
            vocab_size=int(config["vocab_size"]),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            head_dim=int(config.get("head_dim") or d // heads),
            source=source,
        )
    except KeyError as e:
        raise UnknownModel(f"{source}: config has no {e.args[0]!r}; ftm reads Llama-style "
                           "configs (hidden_size, num_hidden_layers, intermediate_size, ...)") from None


@cache
def _known_models() -> dict[str, dict]:
    with KNOWN_MODELS_FILE.open("rb") as f:
        table = tomllib.load(f)["models"]
    index: dict[str, dict] = {}
    for name, cfg in table.items():
        entry = dict(cfg) | {"_name": name}
        for alias in [name, *cfg.get("aliases", [])]:
            index[alias.lower()] = entry
    return index


def known_model_names() -> list[str]:
    return sorted({e["_name"] for e in _known_models().values()})


def model_shape(model: str | Path) -> ModelShape:
    """The shape of ``model``: a local directory (or config.json) or a known hub id.

    Raises `UnknownModel` listing the known ids when neither applies.
    """
    path = Path(model).expanduser()
    config_file = path / "config.json" if path.is_dir() else path
    if config_file.name == "config.json" and config_file.is_file():
        try:
            config = json.loads(config_file.read_text())
        except json.JSONDecodeError as e:
            raise UnknownModel(f"{config_file}: not valid JSON ({e})") from None
        return _from_config(config, str(model), str(config_file))
    entry = _known_models().get(str(model).lower())
    if entry is None:
        entry = next((e for k, e in _known_models().items()
                      if k.split("/")[-1] == str(model).lower()), None)
    if entry is None:
        raise UnknownModel(
            f"unknown model {str(model)!r}: not a local directory with a config.json, nor a "
            f"known hub id; known: {known_list(known_model_names())}"
        )
    return _from_config(entry, entry["_name"], f"{KNOWN_MODELS_FILE.name}: {entry['_name']}")
