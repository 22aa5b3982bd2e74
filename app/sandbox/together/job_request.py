"""A Together ``POST /fine-tunes`` body, checked against the model's limits the way the
service checks it: a bad value is refused with the limit it breaks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.sandbox.errors import invalid
from app.sandbox.together import catalog
from app.sandbox.together.catalog import TogetherModel

DEFAULT_LEARNING_RATE = 1e-5
DEFAULT_LORA_RANK = 8


@dataclass(frozen=True)
class TogetherJobRequest:
    model: TogetherModel
    training_file: str
    validation_file: str | None
    n_epochs: int
    n_checkpoints: int
    n_evals: int
    batch_size: int
    learning_rate: float
    training_method: dict[str, Any]
    training_type: dict[str, Any]
    suffix: str | None

    @property
    def method(self) -> str:
        return self.training_method["method"]

    @property
    def lora(self) -> bool:
        return self.training_type["type"] == "Lora"


def _int(body: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"{name} must be an integer, got {value!r}.", param=name)
    if not low <= value <= high:
        raise invalid(
            f"{name} must be between {low} and {high} for this model, got {value}.", param=name
        )
    return value


def _method(body: dict[str, Any]) -> dict[str, Any]:
    method = body.get("training_method") or {"method": "sft"}
    if not isinstance(method, dict) or method.get("method") not in ("sft", "dpo"):
        raise invalid("training_method.method must be 'sft' or 'dpo'.", param="training_method")
    if method["method"] == "sft":
        # "auto" masks the prompt of chat data: reported as not training on inputs.
        train_on_inputs = method.get("train_on_inputs", "auto")
        return {"method": "sft", "train_on_inputs": train_on_inputs is True}
    return {
        "method": "dpo",
        "dpo_beta": float(method.get("dpo_beta") or 0.1),
        "rpo_alpha": float(method.get("rpo_alpha") or 0.0),
        "simpo_gamma": float(method.get("simpo_gamma") or 0.0),
    }


def _training_type(body: dict[str, Any], model: TogetherModel) -> dict[str, Any]:
    kind = body.get("training_type") or {"type": "Lora"}  # null means LoRA
    if not isinstance(kind, dict) or kind.get("type") not in ("Lora", "Full"):
        raise invalid("training_type.type must be 'Lora' or 'Full'.", param="training_type")
    if kind["type"] == "Full":
        if not model.supports_full_training:
            raise invalid(
                f"{model.name} supports LoRA fine-tuning only; send training_type "
                "{'type': 'Lora'}.",
                param="training_type",
            )
        return {"type": "Full"}
    rank = kind.get("lora_r") or DEFAULT_LORA_RANK
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= model.max_rank:
        raise invalid(
            f"lora_r must be between 1 and {model.max_rank} for {model.name}, got {rank!r}.",
            param="lora_r",
        )
    modules = kind.get("lora_trainable_modules") or "all-linear"
    unknown = [
        m.strip()
        for m in str(modules).split(",")
        if m.strip() not in ("all-linear", *catalog.LORA_TARGET_MODULES)
    ]
    if unknown:
        raise invalid(
            f"lora_trainable_modules: unknown module(s) {', '.join(unknown)}; use "
            f"'all-linear' or some of {', '.join(catalog.LORA_TARGET_MODULES)}.",
            param="lora_trainable_modules",
        )
    return {
        "type": "Lora",
        "lora_r": rank,
        "lora_alpha": int(kind.get("lora_alpha") or rank * 2),
        "lora_dropout": float(kind.get("lora_dropout") or 0.0),
        "lora_trainable_modules": str(modules),
    }


def parse_request(body: Any) -> TogetherJobRequest:
    """The request, or the 400 the service answers for it."""
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    for name in ("training_file", "model"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise invalid(f"Missing required parameter: {name!r}.", param=name)
    model = catalog.fine_tunable(body["model"])
    method = _method(body)
    training_type = _training_type(body, model)
    high = model.max_batch_size if method["method"] == "sft" else model.max_batch_size // 2
    batch = body.get("batch_size", "max")
    batch_size = high if batch in (None, "max") else _int(body, "batch_size", high, 1, high)
    if batch_size < catalog.MIN_BATCH_SIZE:
        raise invalid(
            f"batch_size must be between {catalog.MIN_BATCH_SIZE} and {high} for this model, "
            f"got {batch_size}.",
            param="batch_size",
        )
    rate = body.get("learning_rate", DEFAULT_LEARNING_RATE)
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        raise invalid(f"learning_rate must be a number, got {rate!r}.", param="learning_rate")
    if not catalog.MIN_LEARNING_RATE <= rate <= catalog.MAX_LEARNING_RATE:
        raise invalid(
            f"learning_rate must be between {catalog.MIN_LEARNING_RATE} and "
            f"{catalog.MAX_LEARNING_RATE}, got {rate}.",
            param="learning_rate",
        )
    suffix = body.get("suffix")
    if suffix is not None and (not isinstance(suffix, str) or len(suffix) > 64):
        raise invalid("suffix must be a string of at most 64 characters.", param="suffix")
    validation_file = body.get("validation_file") or None
    n_evals = _int(body, "n_evals", 0, 0, catalog.MAX_EVALS)
    if n_evals and validation_file is None:
        raise invalid("n_evals > 0 needs a validation_file.", param="n_evals")
    return TogetherJobRequest(
        model=model,
        training_file=body["training_file"],
        validation_file=validation_file,
        n_epochs=_int(body, "n_epochs", 1, 1, catalog.MAX_EPOCHS),
        n_checkpoints=_int(body, "n_checkpoints", 1, 1, catalog.MAX_CHECKPOINTS),
        n_evals=n_evals,
        batch_size=batch_size,
        learning_rate=float(rate),
        training_method=method,
        training_type=training_type,
        suffix=suffix,
    )
