"""Local generation for evaluation: a base model, a PEFT adapter directory (loaded on its
base model) or a merged model directory. Greedy by default. Imports torch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from providers.local import inference_cache
from providers.types import ChatMessage, Completion


def _is_adapter(path: Path) -> bool:
    return (path / "adapter_config.json").is_file()


def load(model: str) -> tuple[Any, Any]:
    """(model, tokenizer) for ``model``, cached per process."""
    key = str(Path(model).expanduser().resolve()) if Path(model).expanduser().exists() else model
    cached = inference_cache.get(key)
    if cached is not None:
        return cached
    path = Path(key)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    net: Any  # a transformers model, or a PeftModel wrapping one
    if path.is_dir() and _is_adapter(path):
        import json

        from peft import PeftModel

        base = json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]
        net = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
        net = PeftModel.from_pretrained(net, str(path))
        tok_src = str(path) if (path / "tokenizer_config.json").is_file() else base
    else:
        net = AutoModelForCausalLM.from_pretrained(key, dtype=dtype)
        tok_src = key
    tokenizer = AutoTokenizer.from_pretrained(tok_src)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        from providers.local.training import PLAIN_CHAT_TEMPLATE

        tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
    tokenizer.padding_side = "left"  # generation continues from the right edge
    net.to(device).eval()
    inference_cache.put(key, (net, tokenizer))
    return net, tokenizer


def _as_dicts(messages: Sequence[ChatMessage | dict]) -> list[dict[str, str]]:
    return [m if isinstance(m, dict) else {"role": m.role, "content": m.content} for m in messages]


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
        prompts = [
            tok.apply_chat_template(_as_dicts(c), tokenize=False, add_generation_prompt=True)
            for c in chunk
        ]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(net.device) for k, v in enc.items()}
        t0 = time.perf_counter()
        gen_kwargs: dict[str, Any] = dict(
            max_new_tokens=max_tokens, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id
        )
        if temperature > 0:
            gen_kwargs.update(do_sample=True, temperature=temperature)
        else:
            gen_kwargs.update(do_sample=False)
        ids = net.generate(**enc, **gen_kwargs)
        latency = (time.perf_counter() - t0) * 1000 / len(chunk)
        prompt_len = enc["input_ids"].shape[1]
        for row, mask in zip(ids, enc["attention_mask"], strict=True):
            new = row[prompt_len:]
            new = new[new != tok.pad_token_id] if tok.pad_token_id != tok.eos_token_id else new
            n_new = len(new)
            eos = (new == tok.eos_token_id).nonzero()
            if len(eos):
                n_new = int(eos[0]) + 1
                new = new[: int(eos[0])]
            out.append(
                Completion(
                    text=tok.decode(new, skip_special_tokens=True).strip(),
                    prompt_tokens=int(mask.sum()),
                    completion_tokens=n_new,
                    latency_ms=latency,
                    model=model,
                )
            )
    return out
