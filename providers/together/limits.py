"""A spec checked against Together's per-model limits (``GET /fine-tunes/models/limits``),
before anything is sent: each problem names the limit it breaks."""

from __future__ import annotations

from typing import Any

from providers.types import JobSpec

DEFAULT_LEARNING_RATE = 1e-5
"""Together's documented default learning rate. ftm's ``learning_rate_multiplier`` has no
Together meaning: it scales this (multiplier 2 -> 2e-5); an absolute ``learning_rate`` is
sent as it is."""

DEFAULT_EPOCHS = 1
"""Together's documented default ``n_epochs``: what ftm sends for ``auto``."""

TRAINING_OPTIONS = (
    "lora",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "lora_trainable_modules",
    "n_evals",
    "n_checkpoints",
    "train_on_inputs",
)
"""The ``JobSpec.options`` keys this provider understands (besides the file ids that
`prepare` fills in)."""
PREPARED_OPTIONS = ("training_file", "validation_file")


def learning_rate(spec: JobSpec) -> float:
    hp = spec.hyperparameters
    if hp.learning_rate is not None:
        return float(hp.learning_rate)
    if hp.learning_rate_multiplier != "auto":
        return DEFAULT_LEARNING_RATE * float(hp.learning_rate_multiplier)
    return DEFAULT_LEARNING_RATE


def train_on_inputs(options: dict[str, Any]) -> bool | str:
    """The option as Together takes it: True, False or "auto" (the wizard sends text, the
    CLI's ``--option`` JSON)."""
    value = options.get("train_on_inputs", "auto")
    if value in (True, "true"):
        return True
    if value in (False, "false"):
        return False
    return "auto"


def uses_lora(spec: JobSpec) -> bool:
    return bool(spec.options.get("lora", True))


def _between(name: str, value: Any, low: Any, high: Any, why: str) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return [f"{name}={value!r} must be a number between {low} and {high} ({why})"]
    if not low <= value <= high:
        return [f"{name}={value!r} is outside {low}-{high}, the {why}"]
    return []


def problems(spec: JobSpec, limits: dict[str, Any]) -> list[str]:
    """What breaks the model's limits; empty when the spec fits."""
    model = limits.get("model_name") or spec.base_model
    hp, opts = spec.hyperparameters, spec.options
    out: list[str] = []
    if hp.n_epochs != "auto":
        high = limits.get("max_num_epochs", 20)
        out += _between("n_epochs", hp.n_epochs, 1, high, f"max_num_epochs of {model}")
    if "n_checkpoints" in opts:
        high = limits.get("max_num_checkpoints", 1)
        out += _between(
            "n_checkpoints", opts["n_checkpoints"], 1, high, f"max_num_checkpoints of {model}"
        )
    if "n_evals" in opts:
        high = limits.get("max_num_evals", 0)
        out += _between("n_evals", opts["n_evals"], 0, high, f"max_num_evals of {model}")
        if opts["n_evals"] and not spec.validation_path:
            out.append("n_evals > 0 needs a validation split in the dataset")
    low_lr, high_lr = limits.get("min_learning_rate", 0.0), limits.get("max_learning_rate", 1.0)
    out += _between(
        "learning_rate",
        learning_rate(spec),
        low_lr,
        high_lr,
        f"learning-rate range of {model} (ftm sends {DEFAULT_LEARNING_RATE:g} x "
        "learning_rate_multiplier unless an absolute learning_rate is given)",
    )
    if uses_lora(spec):
        lora = limits.get("lora_training") or {}
        if not lora:
            out.append(f"{model} cannot be fine-tuned with LoRA (no lora_training limits)")
        if "lora_r" in opts:
            out += _between(
                "lora_r", opts["lora_r"], 1, lora.get("max_rank", 0), f"max_rank of {model}"
            )
        if "lora_dropout" in opts:
            dropout = opts["lora_dropout"]
            if not isinstance(dropout, int | float) or not 0 <= dropout < 1:
                out.append(f"lora_dropout={dropout!r} must be in [0, 1)")
        modules = str(opts.get("lora_trainable_modules", "all-linear"))
        allowed = list(lora.get("target_modules") or [])
        unknown = [
            m.strip() for m in modules.split(",") if m.strip() not in ("all-linear", *allowed)
        ]
        if unknown:
            out.append(
                f"lora_trainable_modules: {', '.join(unknown)} not among the target_modules "
                f"of {model} ({', '.join(allowed) or 'none'}, or all-linear)"
            )
        batch_limits = lora
    else:
        full = limits.get("full_training") or {}
        if not limits.get("supports_full_training") or not full.get("max_batch_size"):
            out.append(f"{model} supports LoRA fine-tuning only (supports_full_training: false)")
        batch_limits = full
    if hp.batch_size != "auto" and batch_limits:
        dpo = spec.method == "dpo"
        high = batch_limits.get("max_batch_size_dpo" if dpo else "max_batch_size", 0)
        low = batch_limits.get("min_batch_size", 1)
        kind = ("LoRA" if uses_lora(spec) else "full") + (" DPO" if dpo else "")
        out += _between(
            "batch_size", hp.batch_size, low, high, f"{kind} batch-size range of {model}"
        )
    return out


def local_problems(spec: JobSpec, methods: tuple[str, ...]) -> list[str]:
    """What is wrong without asking Together: the method, options, suffix, files."""
    from pathlib import Path

    out: list[str] = []
    if spec.method not in methods:
        out.append(
            f"method {spec.method!r} is not offered by Together AI fine-tuning "
            f"(use one of: {', '.join(methods)}; LoRA or full is the 'lora' option)"
        )
    unknown = sorted(set(spec.options) - set(TRAINING_OPTIONS) - set(PREPARED_OPTIONS))
    if unknown:
        out.append(
            f"unknown option(s) {', '.join(unknown)}; Together takes: {', '.join(TRAINING_OPTIONS)}"
        )
    if spec.options.get("train_on_inputs", "auto") not in ("auto", "true", "false", True, False):
        out.append("train_on_inputs must be auto, true or false")
    hp = spec.hyperparameters
    if hp.learning_rate is not None and hp.learning_rate_multiplier != "auto":
        out.append("give learning_rate or learning_rate_multiplier, not both")
    if hp.beta != "auto" and spec.method != "dpo":
        out.append("beta applies only to the dpo method")
    if spec.suffix is not None:
        import re

        if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,20}", spec.suffix):
            out.append(
                "suffix must be 1-20 letters, digits, '-', '_' or '.' (Together keeps 40 "
                "characters and ftm adds its job tag)"
            )
    if not Path(spec.train_path).is_file():
        out.append(f"training file not found: {spec.train_path}")
    return out
