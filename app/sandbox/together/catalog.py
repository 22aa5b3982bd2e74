"""The base models the Together emulator fine-tunes, and their limits
(``GET /fine-tunes/models/limits``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.sandbox.errors import ApiError

TOKENIZER_PROXY = "gpt-4o-mini"
"""Token counts use a shipped OpenAI tokenizer (o200k, a vocabulary close in size to
Llama 3's): the emulator has no Llama tokenizer offline. Counts are therefore
approximate for the real service, and exact for the emulator's own prices."""


TINY_MODEL = "ftm-sandbox/tiny-llama"
"""A base model only the emulator has: ftm's tiny Llama (providers/local/tiny_model.py),
built on the fly, so a job trained on it has real PEFT weights to download
(app/sandbox/together/artifacts.py)."""
TINY_MODEL_PARAMS = 135_872
"""Its parameter count as built (checked by tests/sandbox/test_together_download.py)."""


@dataclass(frozen=True)
class TogetherModel:
    name: str
    param_count: int
    max_rank: int = 64
    max_batch_size: int = 96
    supports_full_training: bool = True


MODELS: dict[str, TogetherModel] = {
    m.name: m
    for m in (
        TogetherModel("meta-llama/Llama-3.2-1B-Instruct", 1_235_814_400),
        TogetherModel("meta-llama/Meta-Llama-3.1-8B-Instruct-Reference", 8_030_261_248),
        TogetherModel(
            "meta-llama/Meta-Llama-3.1-70B-Instruct-Reference",
            70_553_706_496,
            max_batch_size=32,
            supports_full_training=False,
        ),
        TogetherModel(TINY_MODEL, TINY_MODEL_PARAMS, max_rank=16),
    )
}
LORA_TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
MIN_LEARNING_RATE = 1e-8
MAX_LEARNING_RATE = 1e-2
MAX_EPOCHS = 20
MAX_CHECKPOINTS = 20
MAX_EVALS = 100
MIN_BATCH_SIZE = 8


def fine_tunable(name: str, param: str = "model", status: int = 400) -> TogetherModel:
    """The model called ``name``, or the error the service answers for one it cannot
    tune (400 on a job; the limits route answers 404)."""
    model = MODELS.get(name)
    if model is None:
        raise ApiError(
            status,
            f"The model {name!r} is not available for fine-tuning. Fine-tunable models: "
            f"{', '.join(MODELS)}.",
            param=param,
            code="invalid_model",
        )
    return model


def limits(model: TogetherModel) -> dict[str, Any]:
    """The model's limits, in the shape the SDK reads before every job creation."""
    full = {
        "max_batch_size": model.max_batch_size if model.supports_full_training else 0,
        "max_batch_size_dpo": model.max_batch_size // 2 if model.supports_full_training else 0,
        "min_batch_size": MIN_BATCH_SIZE if model.supports_full_training else 0,
    }
    return {
        "model_name": model.name,
        "default_gradient_accumulation_steps": 1,
        "full_training": full,
        "lora_training": {
            "default_rank": 8,
            "max_batch_size": model.max_batch_size,
            "max_batch_size_dpo": model.max_batch_size // 2,
            "max_rank": model.max_rank,
            "min_batch_size": MIN_BATCH_SIZE,
            "target_modules": LORA_TARGET_MODULES,
        },
        "max_learning_rate": MAX_LEARNING_RATE,
        "min_learning_rate": MIN_LEARNING_RATE,
        "max_num_checkpoints": MAX_CHECKPOINTS,
        "max_num_epochs": MAX_EPOCHS,
        "max_num_evals": MAX_EVALS,
        "max_seq_length_dpo": 8192,
        "max_seq_length_sft": 8192,
        "min_max_seq_length": 512,
        "merge_output_lora": True,
        "supports_full_training": model.supports_full_training,
        "supports_reasoning": False,
        "supports_tools": True,
        "supports_vision": False,
    }
