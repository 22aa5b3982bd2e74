"""Local generation for evaluation: a base model, a PEFT adapter directory (loaded on its
base model) or a merged model directory. Greedy by default. Imports torch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from providers.local import inference_cache
from providers.local.precision import Precision, choose_precision
from providers.types import ChatMessage, Completion


def is_adapter(path: Path) -> bool:
    """Whether ``path`` is a PEFT adapter directory (else a whole model)."""
    return (path / "adapter_config.json").is_file()


def _this_device() -> tuple[str, Precision]:
    """Where this process evaluates, and the precision ``bf16=auto`` picks there."""
    from providers.local.training import device_capability

    device = "cuda" if torch.cuda.is_available() else "cpu"
    capability, name = device_capability(device)
    return device, choose_precision("auto", device, capability, name)


def _runnable_dtype(dtype: str, device: str, here: Precision) -> str:
    """``dtype`` if this device computes in it (a record from a bf16 GPU read on a T4 or
    the CPU falls back to this device's own choice)."""
    if device == "cpu":
        return "float32" if dtype != "float32" else dtype
    if dtype == "bfloat16" and not here.bf16:
        return here.compute_dtype
    return dtype


def base_loading_for(adapter: Path, device: str, here: Precision) -> dict[str, Any] | None:
    """The adapter's record of how its base was loaded for training, adapted to this
    device's dtypes; None for an adapter without one (older jobs, other tools)."""
    from providers.local.jobdir import BASE_LOADING_FILE

    record = adapter / BASE_LOADING_FILE
    if not record.is_file():
        return None
    loading = json.loads(record.read_text())
    loading["dtype"] = _runnable_dtype(loading["dtype"], device, here)
    quant = loading.get("quantization")
    if quant:
        quant["compute_dtype"] = _runnable_dtype(quant["compute_dtype"], device, here)
    return loading


def load_adapter_base(adapter: Path) -> tuple[Any, str]:
    """(the base model an adapter directory was trained on, its name or path), loaded on
    this device as it was for training (`jobdir.BASE_LOADING_FILE`: 4-bit NF4 for
    QLoRA, the training dtypes), else in the precision ``bf16=auto`` picks here."""
    from providers.local.training import loading_kwargs

    device, here = _this_device()
    base = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    loading = base_loading_for(adapter, device, here) or {"dtype": here.compute_dtype}
    net = AutoModelForCausalLM.from_pretrained(base, **loading_kwargs(loading, device, place=True))
    return net, base


def load_plain(model: str) -> Any:
    """A base, merged or foreign model, on this device in the precision ``bf16=auto``
    picks here."""
    from providers.local.training import loading_kwargs

    device, here = _this_device()
    plain = {"dtype": here.compute_dtype}
    return AutoModelForCausalLM.from_pretrained(model, **loading_kwargs(plain, device, place=True))


def tokenizer_for(source: str) -> Any:
    """The tokenizer at ``source``, set up for generation: a pad token, a chat template
    (ftm's plain one when the model has none), left padding."""
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        from providers.local.training import PLAIN_CHAT_TEMPLATE

        tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
    tokenizer.padding_side = "left"  # generation continues from the right edge
    return tokenizer


def tokenizer_source(adapter: Path, base: str) -> str:
    """An adapter's own tokenizer when it saved one, else its base's."""
    return str(adapter) if (adapter / "tokenizer_config.json").is_file() else base


def load(model: str) -> tuple[Any, Any]:
    """(model, tokenizer) for ``model``, cached per process.

    Placed directly on the device while loading. An adapter trained by ftm has its base
    loaded as it was trained (`load_adapter_base`); any other model in the precision
    ``bf16=auto`` picks here.
    """
    key = str(Path(model).expanduser().resolve()) if Path(model).expanduser().exists() else model
    cached = inference_cache.get(key)
    if cached is not None:
        return cached
    path = Path(key)
    net: Any  # a transformers model, or a PeftModel wrapping one
    if path.is_dir() and is_adapter(path):
        from peft import PeftModel

        net, base = load_adapter_base(path)
        # adapters load in fp32 (peft's autocast_adapter_dtype), as they were trained
        net = PeftModel.from_pretrained(net, str(path))
        tok_src = tokenizer_source(path, base)
    else:
        net = load_plain(key)
        tok_src = key
    tokenizer = tokenizer_for(tok_src)
    net.eval()
    inference_cache.put(key, (net, tokenizer))
    return net, tokenizer


def _as_dicts(messages: Sequence[ChatMessage | dict]) -> list[dict[str, str]]:
    return [m if isinstance(m, dict) else {"role": m.role, "content": m.content} for m in messages]


def prompt_text(tokenizer: Any, messages: Sequence[ChatMessage | dict]) -> str:
    """The conversation in the model's chat template, ready for the assistant's turn."""
    return tokenizer.apply_chat_template(
        _as_dicts(messages), tokenize=False, add_generation_prompt=True
    )


def generation_kwargs(tokenizer: Any, max_tokens: int, temperature: float) -> dict[str, Any]:
    """``generate``'s settings: greedy at temperature 0, else sampling at it."""
    kwargs: dict[str, Any] = dict(
        max_new_tokens=max_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    if temperature > 0:
        kwargs.update(do_sample=True, temperature=temperature)
    else:
        kwargs.update(do_sample=False)
    return kwargs


def reply_of(tokenizer: Any, new: Any) -> tuple[str, int, bool]:
    """(text, completion tokens, whether it ended with end-of-sequence) of the ids a
    generation added after the prompt; the end-of-sequence token counts, as billed."""
    if tokenizer.pad_token_id != tokenizer.eos_token_id:
        new = new[new != tokenizer.pad_token_id]
    n_new = len(new)
    eos = (new == tokenizer.eos_token_id).nonzero()
    if len(eos):
        n_new = int(eos[0]) + 1
        new = new[: int(eos[0])]
    return tokenizer.decode(new, skip_special_tokens=True).strip(), n_new, bool(len(eos))


@torch.inference_mode()
def complete_batch(
    model: str,
    conversations: Sequence[Sequence[ChatMessage | dict]],
    *,
    max_tokens: int = 256,
    temperature: float = 0.0,
    batch_size: int = 16,
) -> list[Completion]:
    """One completion per conversation, in order."""
    net, tok = load(model)
    out: list[Completion] = []
    for start in range(0, len(conversations), batch_size):
        chunk = conversations[start : start + batch_size]
        prompts = [prompt_text(tok, c) for c in chunk]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(net.device) for k, v in enc.items()}
        t0 = time.perf_counter()
        ids = net.generate(**enc, **generation_kwargs(tok, max_tokens, temperature))
        latency = (time.perf_counter() - t0) * 1000 / len(chunk)
        prompt_len = enc["input_ids"].shape[1]
        for row, mask in zip(ids, enc["attention_mask"], strict=True):
            text, n_new, _ = reply_of(tok, row[prompt_len:])
            out.append(
                Completion(
                    text=text,
                    prompt_tokens=int(mask.sum()),
                    completion_tokens=n_new,
                    latency_ms=latency,
                    model=model,
                )
            )
    return out
