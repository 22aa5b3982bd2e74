"""Build trl trainers (SFT for lora / qlora / full, DPO for preferences) from a job's
resolved config. Imported only by the worker and the benches: it pulls in torch.

The config is the dict `providers.local.provider` writes to ``config.json``: paths plus
``hp``, the hyperparameters resolved by `providers.local.options`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    EarlyStoppingCallback,
    TrainerCallback,
)

from providers.local import data as jobdata
from providers.local.distributed import device_map, local_rank, world_size
from providers.local.jobdir import BASE_LOADING_FILE as BASE_LOADING_FILE  # re-exported
from providers.local.kernels import use_liger_kernel
from providers.local.methods import ADAPTER_METHODS, IA3_FEEDFORWARD, IA3_TARGETS
from providers.local.precision import Precision, choose_precision

# A neutral template for models that ship none (base models): plain role headers, the
# assistant's reply (and the EOS that ends it) inside generation markers so the loss can
# be limited to it.
PLAIN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '### Assistant:\n' }}{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
    "{{ '\n' }}"
    "{% else %}{{ '### ' + message['role'] | capitalize + ':\n' + message['content'] + '\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Assistant:\n' }}{% endif %}"
)


@dataclass
class Plan:
    """What was decided while building the trainer (recorded in events and metrics)."""

    device: str
    precision: Precision
    loss_masking: str
    """assistant_tokens | last_turn_completion | all_tokens | dpo"""
    n_train: int
    n_validation: int
    total_steps_estimate: int
    model_params: int
    trainable_params: int
    quantized: bool = False

    @property
    def bf16(self) -> bool:
        return self.precision.bf16


def pick_device(hp: dict[str, Any]) -> str:
    if hp["device"] == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if hp["device"] == "cuda":
        raise RuntimeError("device=cuda was asked for but torch sees no CUDA GPU")
    return "cpu"


def device_capability(device: str) -> tuple[tuple[int, int] | None, str]:
    """(compute capability, name) of the device this process trains on: its CUDA device
    (``LOCAL_RANK`` under accelerate), or (None, "the CPU")."""
    if device != "cuda":
        return None, "the CPU"
    index = local_rank()
    major, minor = torch.cuda.get_device_capability(index)
    return (major, minor), torch.cuda.get_device_name(index)


def process_precision(hp: dict[str, Any], device: str) -> Precision:
    """`choose_precision` for option ``bf16`` on the device this process trains on.

    Raises:
        PrecisionError: bf16=true where the device has no native bf16 (the job fails
            with that message: the CLI refuses it before, from the hardware facts).
    """
    capability, name = device_capability(device)
    return choose_precision(str(hp["bf16"]), device, capability, name)


def load_tokenizer(model_path: str):
    tok = AutoTokenizer.from_pretrained(model_path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not tok.chat_template:
        tok.chat_template = PLAIN_CHAT_TEMPLATE
    return tok


# BASE_LOADING_FILE (defined in jobdir, torch-free, for the serving planner too): written
# next to an adapter's adapter_config.json, how its base was loaded for training
# (`base_loading`), so evaluation and serving load it the same way.


def base_loading(tuning: str, precision: Precision) -> dict[str, Any]:
    """How the base model is loaded for ``tuning`` under ``precision``, as JSON-able data:
    QLoRA, 4-bit NF4 with double quantization computing in the compute dtype (the layers
    left unquantized, embeddings and norms, in it too: a bf16 checkpoint must not stay
    bf16 on an fp16 run); LoRA, the frozen dtype; full, fp32 master weights."""
    loading: dict[str, Any] = {"tuning": tuning, "precision": precision.to_dict()}
    if tuning == "qlora":
        loading["dtype"] = precision.compute_dtype
        loading["quantization"] = {
            "load_in_4bit": True,
            "quant_type": "nf4",
            "double_quant": True,
            "compute_dtype": precision.compute_dtype,
        }
    elif tuning in ADAPTER_METHODS:  # lora, dora, ia3, prefix: a frozen base
        loading["dtype"] = precision.frozen_dtype
    else:
        loading["dtype"] = precision.trainable_dtype
    return loading


def loading_kwargs(loading: dict[str, Any], device: str, *, place: bool = False) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments for a `base_loading` record on ``device``.

    A quantized model is always placed while it loads (``device_map``: bitsandbytes
    quantizes on the way to the device); others only with ``place`` (evaluation: never a
    whole unquantized copy in host memory first; training leaves placement to the Trainer).
    """
    kwargs: dict[str, Any] = {"dtype": getattr(torch, loading["dtype"])}
    quant = loading.get("quantization")
    if quant:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=bool(quant["load_in_4bit"]),
            bnb_4bit_quant_type=quant["quant_type"],
            bnb_4bit_use_double_quant=bool(quant["double_quant"]),
            bnb_4bit_compute_dtype=getattr(torch, quant["compute_dtype"]),
        )
    if quant or place:
        kwargs["device_map"] = device_map(device) or {"": "cpu"}
    return kwargs


def load_model(model_path: str, tuning: str, device: str, precision: Precision):
    """The base model as ``tuning`` trains it under ``precision`` (see `base_loading`).
    On a GPU each rank loads straight onto its own device: not one host-RAM copy per rank,
    moved later."""
    kwargs = loading_kwargs(
        base_loading(tuning, precision), device, place=device_map(device) is not None
    )
    return AutoModelForCausalLM.from_pretrained(model_path, **kwargs)


def load_reference(model_path: str, precision: Precision, device: str):
    """Full DPO's frozen reference model: forward passes only, so in the compute dtype (a
    second copy of the weights; trl's default would copy the fp32 master weights)."""
    ref = AutoModelForCausalLM.from_pretrained(
        model_path,
        dtype=getattr(torch, precision.compute_dtype),
        device_map=device_map(device),
    )
    return ref.requires_grad_(False).eval()


def keep_trainable_dtype(model, precision: Precision) -> int:
    """Cast trainable parameters back to ``precision.trainable_dtype`` (fp32); returns how
    many were cast. trl 1.16's SFT and DPO trainers cast a quantized model's adapters to
    bf16 (the QLoRA paper's choice), which on an fp16 run makes bf16 computations on a GPU
    without bf16, and on a CPU run bf16 adapters. fp32 adapters are what the GradScaler
    needs (it refuses fp16 gradients) and keep small updates from rounding away."""
    dtype = getattr(torch, precision.trainable_dtype)
    cast = 0
    for param in model.parameters():
        if param.requires_grad and param.is_floating_point() and param.dtype != dtype:
            param.data = param.data.to(dtype)
            cast += 1
    return cast


def lora_config(hp: dict[str, Any], *, dora: bool = False):
    from peft import LoraConfig

    targets = hp["target_modules"]
    if targets != "all-linear":
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    return LoraConfig(
        r=hp["r"],
        lora_alpha=hp["alpha"],
        lora_dropout=hp["dropout"],
        target_modules=targets,
        task_type="CAUSAL_LM",
        bias="none",
        use_dora=dora,
    )


def peft_config(hp: dict[str, Any]):
    """The PEFT config of the adapter ``hp["tuning"]`` trains; None for a full fine-tune."""
    tuning = hp["tuning"]
    if tuning in ("lora", "qlora", "dora"):
        return lora_config(hp, dora=tuning == "dora")
    if tuning == "ia3":
        from peft import IA3Config

        return IA3Config(
            target_modules=list(IA3_TARGETS),
            feedforward_modules=list(IA3_FEEDFORWARD),
            task_type="CAUSAL_LM",
        )
    if tuning == "prefix":
        from peft import PrefixTuningConfig

        return PrefixTuningConfig(
            num_virtual_tokens=hp["num_virtual_tokens"], task_type="CAUSAL_LM"
        )
    return None


def _auto_steps(value: Any, total: int, count: int) -> int:
    return int(value) if value != "auto" else max(1, math.ceil(total / count))


def common_args(
    hp: dict[str, Any],
    output_dir: Path,
    n_train: int,
    has_eval: bool,
    device: str,
    precision: Precision,
) -> tuple[dict[str, Any], int]:
    """TrainingArguments shared by SFT and DPO, plus the estimated total steps.

    Mixed precision is ``precision``'s: bf16 autocast, or fp16 autocast with accelerate's
    GradScaler; TF32 matmuls where the GPU has them (None elsewhere: transformers refuses
    ``tf32=True`` without an Ampere GPU)."""
    # The processes really training (WORLD_SIZE), not the option: each consumes a batch.
    per_step = hp["batch_size"] * hp["grad_accum"] * world_size()
    total = math.ceil(n_train / per_step) * hp["epochs"]
    eval_steps = _auto_steps(hp["eval_steps"], total, 10)
    # auto: a checkpoint at each evaluation. Set values were aligned (or refused) by
    # `options.resolve_hyperparameters`: nothing the user set is changed here.
    save_steps = (
        _auto_steps(hp["save_steps"], total, 10) if hp["save_steps"] != "auto" else eval_steps
    )
    args = dict(
        output_dir=str(output_dir),
        num_train_epochs=hp["epochs"],
        per_device_train_batch_size=hp["batch_size"],
        per_device_eval_batch_size=hp["batch_size"],
        gradient_accumulation_steps=hp["grad_accum"],
        learning_rate=hp["learning_rate"],
        lr_scheduler_type=hp["scheduler"],
        warmup_steps=hp["warmup_ratio"],  # a float below 1 is a ratio in transformers 5
        gradient_checkpointing=hp["gradient_checkpointing"],
        seed=hp["seed"],
        data_seed=hp["seed"],
        use_liger_kernel=use_liger_kernel(hp.get("liger_kernel", "auto"), device),
        bf16=precision.bf16,
        fp16=precision.fp16,
        tf32=True if precision.tf32 else None,
        use_cpu=device == "cpu",
        logging_steps=_auto_steps(hp["logging_steps"], total, 50),
        logging_first_step=True,
        save_strategy="steps",
        save_steps=save_steps,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=eval_steps if has_eval else None,
        report_to="none",
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
        save_only_model=False,  # optimizer state is kept: resume continues exactly
        # ...and so does early stopping: its patience counter is restored from the
        # checkpoint (transformers' ExportableState), not restarted at 0.
        restore_callback_states_from_checkpoint=True,
        # Under DDP every trainable weight gets a gradient each step (adapters on the
        # modules in the forward pass, or every weight): no search for unused ones, which
        # transformers would turn on for a PEFT model (not a PreTrainedModel) and which
        # breaks with gradient checkpointing.
        ddp_find_unused_parameters=False,
    )
    if has_eval and hp["early_stopping_patience"] > 0:
        args.update(
            load_best_model_at_end=True,
            metric_for_best_model="eval_loss",
            greater_is_better=False,
            save_total_limit=2,
        )
    else:
        args.update(save_total_limit=2)
    return args, total


def build_trainer(config: dict[str, Any], callbacks: list[TrainerCallback]):
    """The trainer for ``config`` and the `Plan` behind it."""
    hp = config["hp"]
    if hp.get("torch_threads"):
        torch.set_num_threads(int(hp["torch_threads"]))
    device = pick_device(hp)
    precision = process_precision(hp, device)
    tokenizer = load_tokenizer(config["base_model"])
    output_dir = Path(config["output_dir"])
    callbacks = list(callbacks)
    if hp["method"] == "dpo":
        return _build_dpo(config, hp, tokenizer, device, precision, output_dir, callbacks)
    return _build_sft(config, hp, tokenizer, device, precision, output_dir, callbacks)


def _is_4bit(model) -> bool:
    return bool(getattr(model, "is_loaded_in_4bit", False))


def real_param_count(param) -> int:
    """The parameters a tensor holds. A bitsandbytes 4-bit weight (``Params4bit``) is
    packed: two 4-bit values per byte of its storage dtype (``quant_storage``, uint8 by
    default), so ``numel()`` is half the truth (an eighth with a 4-byte storage). Counted
    as transformers' ``PreTrainedModel.num_parameters`` and PEFT's
    ``get_nb_trainable_parameters`` count it."""
    n = param.numel()
    if type(param).__name__ == "Params4bit":  # no bitsandbytes import for the common case
        n *= 2 * param.element_size()
    return n


def _counts(model) -> tuple[int, int]:
    """(all, trainable) parameters of ``model`` (a PEFT wrapper included), 4-bit weights at
    their real size: the plan event and the throughput sample report these."""
    total = trainable = 0
    for p in model.parameters():
        n = real_param_count(p)
        total += n
        trainable += n if p.requires_grad else 0
    return total, trainable


def _build_sft(config, hp, tokenizer, device, precision, output_dir, callbacks):
    from trl import SFTConfig, SFTTrainer
    from trl.chat_template_utils import get_training_chat_template

    train_rows = jobdata.chat_rows(config["train_path"])
    val_rows = jobdata.chat_rows(config["validation_path"]) if config.get("validation_path") else []
    masking = "all_tokens"
    assistant_only = False
    if hp["assistant_only_loss"]:
        try:
            get_training_chat_template(tokenizer)  # None: usable as is; a str: trl patches it
            masking, assistant_only = "assistant_tokens", True
        except ValueError:
            # A template trl cannot add generation markers to: train the last assistant
            # turn as a completion (trl masks the prompt), which is what single-turn
            # labelling data needs anyway.
            masking = "last_turn_completion"
            train_rows = jobdata.as_prompt_completion(train_rows)
            val_rows = jobdata.as_prompt_completion(val_rows)

    args, total = common_args(hp, output_dir, len(train_rows), bool(val_rows), device, precision)
    sft_args = SFTConfig(
        **args,
        max_length=hp["max_seq_len"],
        packing=hp["packing"],
        assistant_only_loss=assistant_only,
        dataset_num_proc=None,
    )
    return _make_trainer(
        SFTTrainer,
        sft_args,
        total,
        masking,
        config,
        hp,
        tokenizer,
        device,
        precision,
        train_rows,
        val_rows,
        callbacks,
    )


def _build_dpo(config, hp, tokenizer, device, precision, output_dir, callbacks):
    from trl import DPOConfig, DPOTrainer

    train_rows = jobdata.preference_rows(config["train_path"])
    val_rows = (
        jobdata.preference_rows(config["validation_path"]) if config.get("validation_path") else []
    )
    args, total = common_args(hp, output_dir, len(train_rows), bool(val_rows), device, precision)
    dpo_args = DPOConfig(**args, beta=hp["dpo_beta"], max_length=hp["max_seq_len"])
    return _make_trainer(
        DPOTrainer,
        dpo_args,
        total,
        "dpo",
        config,
        hp,
        tokenizer,
        device,
        precision,
        train_rows,
        val_rows,
        callbacks,
    )


def _make_trainer(
    trainer_cls,
    trainer_args,
    total,
    masking,
    config,
    hp,
    tokenizer,
    device,
    precision,
    train_rows,
    val_rows,
    callbacks,
):
    """Load the model and build an SFT or DPO trainer the same way: validation half
    evaluated when present, early stopping on eval loss, LoRA config for (Q)LoRA."""
    has_eval = bool(val_rows)
    model = load_model(config["base_model"], hp["tuning"], device, precision)
    extra: dict[str, Any] = {}
    if hp["method"] == "dpo" and hp["tuning"] == "full":
        extra["ref_model"] = load_reference(config["base_model"], precision, device)
    if has_eval and hp["early_stopping_patience"] > 0:
        callbacks.append(
            EarlyStoppingCallback(early_stopping_patience=hp["early_stopping_patience"])
        )
    trainer = trainer_cls(
        model=model,
        args=trainer_args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(val_rows) if has_eval else None,
        processing_class=tokenizer,
        callbacks=callbacks,
        peft_config=peft_config(hp),
        **extra,
    )
    keep_trainable_dtype(trainer.model, precision)
    n_all, n_trainable = _counts(trainer.model)
    plan = Plan(
        device,
        precision,
        masking,
        len(train_rows),
        len(val_rows),
        total,
        n_all,
        n_trainable,
        _is_4bit(model),
    )
    return trainer, plan
