"""Build trl trainers (SFT for lora / qlora / full, DPO for preferences) from a job's
resolved config. Imported only by the worker and the benches: it pulls in torch.

The config is the dict `providers.local.provider` writes to ``config.json``: paths plus
``hp``, the hyperparameters resolved by `providers.local.options`.
"""

from __future__ import annotations

import math
import os
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
from providers.local.distributed import device_map, world_size

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
    bf16: bool
    loss_masking: str
    """assistant_tokens | last_turn_completion | all_tokens | dpo"""
    n_train: int
    n_validation: int
    total_steps_estimate: int
    model_params: int
    trainable_params: int
    quantized: bool = False


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def pick_device(hp: dict[str, Any]) -> str:
    if hp["device"] == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if hp["device"] == "cuda":
        raise RuntimeError("device=cuda was asked for but torch sees no CUDA GPU")
    return "cpu"


def use_bf16(hp: dict[str, Any], device: str) -> bool:
    if hp["bf16"] == "true" and not (device == "cuda" and torch.cuda.is_bf16_supported()):
        # asked for explicitly: never dropped without a word
        raise RuntimeError(
            f"bf16=true was asked for but the {device} device has no bf16; set bf16=auto or false"
        )
    if hp["bf16"] == "false" or device != "cuda":
        return False  # CPU trains in fp32: bf16 autocast there is slower, not faster
    return torch.cuda.is_bf16_supported()


def load_tokenizer(model_path: str):
    tok = AutoTokenizer.from_pretrained(model_path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not tok.chat_template:
        tok.chat_template = PLAIN_CHAT_TEMPLATE
    return tok


def load_model(model_path: str, tuning: str, device: str, bf16: bool):
    """The base model as the method needs it: 4-bit NF4 with double quantization for
    QLoRA, bf16 frozen weights for LoRA on a bf16 GPU, fp32 master weights for full."""
    kwargs: dict[str, Any] = {}
    if tuning == "qlora":
        compute = torch.bfloat16 if bf16 else (torch.float16 if device == "cuda" else torch.float32)
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute,
        )
        kwargs["device_map"] = {"": local_rank()} if device == "cuda" else {"": "cpu"}
    elif tuning == "lora" and bf16:
        kwargs["dtype"] = torch.bfloat16
    else:
        kwargs["dtype"] = torch.float32
    if device_map(device) is not None:
        kwargs["device_map"] = device_map(device)  # onto this rank's GPU, no host-RAM copy
    return AutoModelForCausalLM.from_pretrained(model_path, **kwargs)


def lora_config(hp: dict[str, Any]):
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
    )


def _auto_steps(value: Any, total: int, count: int) -> int:
    return int(value) if value != "auto" else max(1, math.ceil(total / count))


def common_args(
    hp: dict[str, Any], output_dir: Path, n_train: int, has_eval: bool, device: str, bf16: bool
) -> tuple[dict[str, Any], int]:
    """TrainingArguments shared by SFT and DPO, plus the estimated total steps."""
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
        bf16=bf16,
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
    bf16 = use_bf16(hp, device)
    tokenizer = load_tokenizer(config["base_model"])
    output_dir = Path(config["output_dir"])
    callbacks = list(callbacks)
    if hp["method"] == "dpo":
        return _build_dpo(config, hp, tokenizer, device, bf16, output_dir, callbacks)
    return _build_sft(config, hp, tokenizer, device, bf16, output_dir, callbacks)


def _is_4bit(model) -> bool:
    return bool(getattr(model, "is_loaded_in_4bit", False))


def _counts(model) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def _build_sft(config, hp, tokenizer, device, bf16, output_dir, callbacks):
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

    args, total = common_args(hp, output_dir, len(train_rows), bool(val_rows), device, bf16)
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
        bf16,
        train_rows,
        val_rows,
        callbacks,
    )


def _build_dpo(config, hp, tokenizer, device, bf16, output_dir, callbacks):
    from trl import DPOConfig, DPOTrainer

    train_rows = jobdata.preference_rows(config["train_path"])
    val_rows = (
        jobdata.preference_rows(config["validation_path"]) if config.get("validation_path") else []
    )
    args, total = common_args(hp, output_dir, len(train_rows), bool(val_rows), device, bf16)
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
        bf16,
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
    bf16,
    train_rows,
    val_rows,
    callbacks,
):
    """Load the model and build an SFT or DPO trainer the same way: validation half
    evaluated when present, early stopping on eval loss, LoRA config for (Q)LoRA."""
    has_eval = bool(val_rows)
    model = load_model(config["base_model"], hp["tuning"], device, bf16)
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
        peft_config=lora_config(hp) if hp["tuning"] in ("lora", "qlora") else None,
    )
    n_all, n_trainable = _counts(trainer.model)
    plan = Plan(
        device,
        bf16,
        masking,
        len(train_rows),
        len(val_rows),
        total,
        n_all,
        n_trainable,
        _is_4bit(model),
    )
    return trainer, plan


def flops_per_token(
    n_params: int,
    n_trainable: int,
    layers: int,
    hidden: int,
    seq_len: float,
    tuning: str,
    gradient_checkpointing: bool,
) -> float:
    """Training FLOPs per token: full, 6 x params + attention; adapters, 4 x params (frozen
    weights: forward and activation gradients only) + 6 x trainable + attention;
    checkpointing adds one more forward."""
    attn = 12.0 * layers * hidden * seq_len
    if tuning == "full":
        f = 6.0 * n_params + attn
    else:
        f = 4.0 * n_params + attn + 6.0 * n_trainable
    if gradient_checkpointing:
        f += 2.0 * n_params + 4.0 * layers * hidden * seq_len
    return f
