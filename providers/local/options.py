"""The local provider's settings, declared as data, and their resolution into the config a
worker trains from.

Every hyperparameter has a default and can be overridden in ``JobSpec.options`` (by the
option's name) or, for the common ones, in ``JobSpec.hyperparameters``. Resolution is pure
(no torch): it runs in the CLI before anything starts, and bad values are refused with a
message naming the option.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from providers.base import ProviderOption
from providers.errors import SpecRejected
from providers.local.methods import MERGEABLE, PREFIX_NOT_MERGEABLE
from providers.types import JobSpec

METHODS = ("lora", "qlora", "dora", "ia3", "prefix", "full", "dpo")
"""``dpo`` trains a LoRA adapter by default (option ``dpo_tuning``). ``dora``, ``ia3`` and
``prefix`` are PEFT adapters too (weight-decomposed LoRA, learned scaling vectors, trained
virtual key/value tokens); which a base model supports: `providers.local.methods`."""

SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts")

# Method aliases accepted from the provider-neutral spec ("supervised" means the local
# default, LoRA).
_METHOD_ALIASES = {"supervised": "lora", "sft": "lora"}

AUTO = "auto"

OPTIONS: tuple[ProviderOption, ...] = (
    ProviderOption("r", "LoRA/DoRA rank", int, 16),
    ProviderOption("alpha", "LoRA/DoRA alpha (scaling = alpha / r)", int, 32),
    ProviderOption("dropout", "LoRA/DoRA dropout", float, 0.05),
    ProviderOption(
        "target_modules",
        "Modules LoRA/DoRA adapts: 'all-linear' or a comma-separated list (q_proj,v_proj)",
        str,
        "all-linear",
    ),
    ProviderOption(
        "learning_rate",
        "Peak learning rate; auto: 2e-4 LoRA/QLoRA/DoRA, 3e-3 IA3, 1e-2 prefix, 2e-5 full, "
        "5e-5 DPO",
        float,
        AUTO,
    ),
    ProviderOption(
        "num_virtual_tokens", "Prefix tuning: trained key/value tokens per layer", int, 20
    ),
    ProviderOption("epochs", "Passes over the training data", int, 3),
    ProviderOption("batch_size", "Examples per device per step", int, 8),
    ProviderOption("grad_accum", "Gradient accumulation steps", int, 1),
    ProviderOption(
        "warmup_ratio", "Share of steps spent warming the learning rate up", float, 0.03
    ),
    ProviderOption("scheduler", "Learning-rate schedule", str, "cosine", SCHEDULERS),
    ProviderOption(
        "max_seq_len", "Longest sequence in tokens (longer ones are truncated)", int, 1024
    ),
    ProviderOption(
        "gradient_checkpointing",
        "Recompute activations to save memory; auto: on with a CUDA GPU, off on the CPU",
        bool,
        AUTO,
    ),
    ProviderOption("seed", "Random seed (data order, LoRA init)", int, 42),
    ProviderOption(
        "packing", "Pack short examples into full-length rows (less padding)", bool, False
    ),
    ProviderOption(
        "assistant_only_loss",
        "Loss on assistant tokens only (the chat template needs {% generation %} markers or a "
        "known template; otherwise the last assistant turn is trained as a completion)",
        bool,
        True,
    ),
    ProviderOption(
        "eval_steps",
        "Evaluate the validation split every N steps; auto: ~10 evals, or at each checkpoint "
        "when save_steps is set and early stopping is on",
        int,
        AUTO,
    ),
    ProviderOption(
        "save_steps",
        "Checkpoint every N steps; auto: at each evaluation (with early stopping, a multiple "
        "of eval_steps)",
        int,
        AUTO,
    ),
    ProviderOption("logging_steps", "Report progress every N steps; auto: ~50 reports", int, AUTO),
    ProviderOption(
        "early_stopping_patience",
        "Stop after this many evaluations without a better eval loss (0: never)",
        int,
        3,
    ),
    ProviderOption("dpo_beta", "DPO beta (strength of the reference model constraint)", float, 0.1),
    ProviderOption("dpo_tuning", "What DPO trains", str, "lora", ("lora", "qlora", "full")),
    ProviderOption("device", "Where to train", str, AUTO, (AUTO, "cuda", "cpu")),
    ProviderOption(
        "n_gpus",
        "GPUs to train on (more than 1: launched with accelerate); with device=cpu, CPU "
        "processes (a dry run of multi-GPU training)",
        int,
        1,
    ),
    ProviderOption(
        "bf16", "bf16 compute; auto: where the hardware has it", str, AUTO, (AUTO, "true", "false")
    ),
    ProviderOption(
        "liger_kernel",
        "Liger's fused Triton kernels (RMSNorm, RoPE, SwiGLU); auto: on with a CUDA GPU when "
        "the liger-kernel package is installed (pip install 'ftm[gpu]')",
        str,
        AUTO,
        (AUTO, "true", "false"),
    ),
    ProviderOption("merge", "Also write a merged model (base + adapter) at the end", bool, False),
    ProviderOption("torch_threads", "CPU threads for training (0: torch's default)", int, 0),
    ProviderOption(
        "skip_memory_check", "Start even when the memory estimate says it will not fit", bool, False
    ),
    ProviderOption(
        "cluster",
        "Train on a Ray cluster instead of this machine: its dashboard address "
        "(http://HOST:8265) or a Ray Client address (ray://HOST:10001); the jobs directory "
        "must be on storage the cluster's nodes mount at the same path (empty: this machine)",
        str,
        "",
    ),
)

_BY_NAME = {o.name: o for o in OPTIONS}


def _coerce(option: ProviderOption, value: Any) -> Any:
    if value == AUTO and option.default == AUTO:
        return AUTO
    try:
        if option.type is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low not in {"true", "false", "1", "0", "yes", "no"}:
                    raise ValueError(value)
                return low in {"true", "1", "yes"}
            return bool(value)
        out = option.type(value)
    except (TypeError, ValueError):
        raise SpecRejected(
            f"option {option.name}={value!r}: expected {option.type.__name__}"
            f" ({option.description})",
            param=option.name,
        ) from None
    if option.choices and out not in option.choices:
        raise SpecRejected(
            f"option {option.name}={value!r}: choose one of {', '.join(map(str, option.choices))}",
            param=option.name,
        )
    return out


def normalize_method(method: str) -> str:
    m = _METHOD_ALIASES.get(method, method)
    if m not in METHODS:
        raise SpecRejected(
            f"method {method!r} is not available locally; choose one of {', '.join(METHODS)}",
            param="method",
        )
    return m


def default_learning_rate(method: str, tuning: str) -> float:
    """The peak learning rate ``auto`` resolves to for a (normalized) method and what it
    trains (``tuning``: lora, qlora or full)."""
    if method == "dpo":
        return 5e-5 if tuning != "full" else 5e-7
    # IA3's scaling vectors and prefix tuning's virtual tokens are few parameters far from
    # their trained values: they need a higher rate (the IA3 and prefix-tuning papers' ranges).
    rates = {"lora": 2e-4, "qlora": 2e-4, "dora": 2e-4, "ia3": 3e-3, "prefix": 1e-2}
    return rates.get(tuning, 2e-5)


def resolve_hyperparameters(spec: JobSpec) -> dict[str, Any]:
    """Every option resolved to a concrete value for ``spec`` (``auto`` step counts stay
    ``auto``: they depend on the dataset size, known to the worker).

    Raises:
        SpecRejected: an unknown option or a value of the wrong type or range.
    """
    unknown = sorted(set(spec.options) - set(_BY_NAME))
    if unknown:
        raise SpecRejected(
            f"unknown local option(s): {', '.join(unknown)}; known: {', '.join(sorted(_BY_NAME))}",
            param=unknown[0],
        )
    method = normalize_method(spec.method)
    hp: dict[str, Any] = {o.name: o.default for o in OPTIONS}
    common = spec.hyperparameters
    if common.n_epochs != AUTO:
        hp["epochs"] = common.n_epochs
    if common.batch_size != AUTO:
        hp["batch_size"] = common.batch_size
    if common.beta != AUTO:
        hp["dpo_beta"] = common.beta
    if spec.seed is not None:
        hp["seed"] = spec.seed
    for name, value in spec.options.items():
        hp[name] = value
    hp = {name: _coerce(_BY_NAME[name], value) for name, value in hp.items()}

    tuning = hp["dpo_tuning"] if method == "dpo" else method
    if hp["learning_rate"] == AUTO:
        hp["learning_rate"] = default_learning_rate(method, tuning)
    if common.learning_rate is not None:
        hp["learning_rate"] = float(common.learning_rate)
    elif common.learning_rate_multiplier != AUTO:
        hp["learning_rate"] *= float(common.learning_rate_multiplier)

    for name in (
        "r",
        "alpha",
        "num_virtual_tokens",
        "epochs",
        "batch_size",
        "grad_accum",
        "max_seq_len",
        "n_gpus",
    ):
        if hp[name] < 1:
            raise SpecRejected(f"option {name}={hp[name]}: must be at least 1", param=name)
    if not 0 <= hp["dropout"] < 1:
        raise SpecRejected(f"option dropout={hp['dropout']}: must be in [0, 1)", param="dropout")
    if not 0 <= hp["warmup_ratio"] < 1:
        raise SpecRejected(
            f"option warmup_ratio={hp['warmup_ratio']}: must be in [0, 1)", param="warmup_ratio"
        )
    if hp["learning_rate"] <= 0:
        raise SpecRejected("learning rate must be positive", param="learning_rate")
    if hp["early_stopping_patience"] < 0:
        raise SpecRejected(
            "option early_stopping_patience: must be 0 or more", param="early_stopping_patience"
        )
    for name in ("eval_steps", "save_steps", "logging_steps"):
        if hp[name] != AUTO and hp[name] < 1:
            raise SpecRejected(
                f"option {name}={hp[name]}: must be at least 1 (or auto)", param=name
            )
    _align_step_intervals(hp, has_validation=spec.validation_path is not None)
    _refuse_ignored_options(hp, set(spec.options), method, tuning)
    if tuning == "prefix" and hp["gradient_checkpointing"] is True:
        raise SpecRejected(
            "option gradient_checkpointing=true does not apply to prefix training: prefix "
            "tuning hands its virtual tokens to attention as a KV cache, which checkpointed "
            "layers do not keep (set gradient_checkpointing=auto or false; the prefix's "
            "own memory is small)",
            param="gradient_checkpointing",
        )
    if hp["gradient_checkpointing"] == AUTO:
        from providers.local.hardware import gpus

        # off for prefix tuning (see above); else on with a CUDA GPU (on a cluster: the
        # GPUs the job asks for, not this machine's)
        on_gpu = hp["device"] != "cpu" and (bool(hp["cluster"]) or bool(gpus()))
        hp["gradient_checkpointing"] = on_gpu and tuning != "prefix"
    _refuse_unrunnable_kernels(hp)
    hp["method"] = method
    hp["tuning"] = tuning
    return hp


def _align_step_intervals(hp: dict[str, Any], *, has_validation: bool) -> None:
    """Early stopping keeps the best model, so it needs a checkpoint at every evaluation:
    ``save_steps`` must be a multiple of ``eval_steps``. A value the user set is never
    changed: an ``auto`` eval interval follows a set ``save_steps``; two set values that
    do not fit are refused with the reason (the trainer would otherwise pick for them)."""
    if not (has_validation and hp["early_stopping_patience"] > 0):
        return
    save, every = hp["save_steps"], hp["eval_steps"]
    if save == AUTO:
        return  # checkpoints follow the evaluations (see `common_args`)
    if every == AUTO:
        hp["eval_steps"] = save
    elif save % every:
        raise SpecRejected(
            f"option save_steps={save} is not a multiple of eval_steps={every}: early stopping "
            "keeps the best evaluated model, so it needs a checkpoint at every evaluation. "
            f"Set eval_steps to a divisor of {save} (or auto), or early_stopping_patience=0",
            param="save_steps",
        )


# Options that only mean something for some trainings: set for another, they would be
# ignored without a word, so they are refused instead.
_LORA_LIKE = ("lora", "qlora", "dora")
_ONLY_FOR: dict[str, tuple[tuple[str, ...], str]] = {
    "r": (_LORA_LIKE, "the rank applies to LoRA/QLoRA/DoRA"),
    "alpha": (_LORA_LIKE, "alpha applies to LoRA/QLoRA/DoRA"),
    "dropout": (_LORA_LIKE, "dropout applies to LoRA/QLoRA/DoRA"),
    "target_modules": (
        _LORA_LIKE,
        "LoRA/QLoRA/DoRA choose their modules; IA3 scales k_proj, v_proj and down_proj, "
        "prefix tuning adds tokens and a full fine-tune trains every module",
    ),
    "merge": (MERGEABLE, "a full fine-tune is already a complete model"),
    "num_virtual_tokens": (("prefix",), "virtual tokens apply to prefix tuning only"),
}


def _refuse_ignored_options(
    hp: dict[str, Any], set_by_user: set[str], method: str, tuning: str
) -> None:
    for name in sorted(set_by_user & set(_ONLY_FOR)):
        trainings, why = _ONLY_FOR[name]
        if tuning not in trainings and hp[name] not in (False, None):
            if name == "merge" and tuning == "prefix":
                why = PREFIX_NOT_MERGEABLE
            raise SpecRejected(
                f"option {name} does not apply to {tuning} training: {why}", param=name
            )
    if method == "dpo" and hp["packing"] and "packing" in set_by_user:
        raise SpecRejected(
            "option packing applies to supervised training; DPO trains on whole preference pairs",
            param="packing",
        )
    if str(hp["bf16"]) == "true" and hp["device"] == "cpu":
        raise SpecRejected(
            "option bf16=true needs a CUDA GPU; device=cpu trains in fp32 (set bf16=auto or false)",
            param="bf16",
        )


def _refuse_unrunnable_kernels(hp: dict[str, Any]) -> None:
    """``liger_kernel=true`` where it cannot run is refused here, before a job starts
    (``auto`` is decided by the worker on the device it trains on)."""
    from providers.local.hardware import gpus
    from providers.local.kernels import KernelError, use_liger_kernel

    if str(hp["liger_kernel"]) != "true":
        return
    device = "cuda" if hp["device"] != "cpu" and gpus() else "cpu"
    try:
        use_liger_kernel(hp["liger_kernel"], device)
    except KernelError as exc:
        raise SpecRejected(f"option {exc}", param="liger_kernel") from None


def spec_snapshot(spec: JobSpec) -> dict[str, Any]:
    """The spec as JSON-able data (written into the job's config)."""
    return asdict(spec)
