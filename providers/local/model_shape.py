"""A model's shape (layers, widths, vocabulary) and the parameter counts derived from it.

Read from the model's ``config.json``, never guessed. The counts assume the Llama family's
layout (q/k/v/o attention projections and a gated MLP), which covers Llama, Mistral,
Qwen2, Gemma and Phi-3; norms and biases are ignored (well under 0.1% of parameters).

It lives in providers/ because the local provider refuses jobs that cannot fit from this
shape; app/costs reads the same class (adding a table of known hub models), so the
estimate and the refusal count the same parameters.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

# LoRA target module names (PEFT's names for the Llama layout).
ATTENTION_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_MODULES = ("gate_proj", "up_proj", "down_proj")
ALL_LINEAR = ATTENTION_MODULES + MLP_MODULES


def target_names(option: str) -> tuple[str, ...]:
    """The modules the ``target_modules`` option names: every linear projection for
    ``all-linear``, else its comma-separated list."""
    if option == "all-linear":
        return ALL_LINEAR
    return tuple(t.strip() for t in str(option).split(",") if t.strip())


class ShapeError(ValueError):
    """A config.json (or a LoRA target) this shape model cannot read."""


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
            "q_proj": (d, q),
            "k_proj": (d, kv),
            "v_proj": (d, kv),
            "o_proj": (q, d),
            "gate_proj": (d, ffn),
            "up_proj": (d, ffn),
            "down_proj": (ffn, d),
        }
        try:
            return shapes[module]
        except KeyError:
            raise ShapeError(
                f"unknown LoRA target module {module!r}; known: {', '.join(sorted(shapes))} "
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
        return asdict(self) | {
            "params": self.params,
            "linear_params": self.linear_params,
            "embedding_params": self.embedding_params,
        }


def shape_from_config(config: dict, name: str, source: str) -> ModelShape:
    """The shape a config.json (as a dict) describes."""
    # Multimodal and some newer configs nest the language model's settings.
    config = config.get("text_config", config)
    try:
        d = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
        return ModelShape(
            name=name,
            hidden_size=d,
            num_hidden_layers=int(config["num_hidden_layers"]),
            num_attention_heads=heads,
            num_key_value_heads=int(config.get("num_key_value_heads") or heads),
            intermediate_size=int(config["intermediate_size"]),
            vocab_size=int(config["vocab_size"]),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            head_dim=int(config.get("head_dim") or d // heads),
            source=source,
        )
    except KeyError as e:
        raise ShapeError(
            f"{source}: config has no {e.args[0]!r}; ftm reads Llama-style "
            "configs (hidden_size, num_hidden_layers, intermediate_size, ...)"
        ) from None
    except (TypeError, ValueError) as e:
        raise ShapeError(f"{source}: {e}") from None


def local_config_file(model: str | Path) -> Path | None:
    """The config.json of ``model`` when it is a local directory (or the file itself)."""
    path = Path(model).expanduser()
    config_file = path / "config.json" if path.is_dir() else path
    if config_file.name == "config.json" and config_file.is_file():
        return config_file
    return None


def load_local_shape(model: str | Path) -> ModelShape | None:
    """The shape of ``model`` when it is a local directory with a config.json, else None.

    Raises `ShapeError` for a config.json that is not valid JSON or lacks a field.
    """
    config_file = local_config_file(model)
    if config_file is None:
        return None
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as e:
        raise ShapeError(f"{config_file}: not valid JSON ({e})") from None
    return shape_from_config(config, str(model), str(config_file))
