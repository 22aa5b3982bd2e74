"""Merge a LoRA, DoRA or IA3 adapter into its base model: one safetensors model directory with the
tokenizer and chat template, loadable with ``AutoModelForCausalLM.from_pretrained``, whose
outputs match the base model with the adapter applied.
"""

from __future__ import annotations

import json
from pathlib import Path

from providers.local.methods import PREFIX_NOT_MERGEABLE


class MergeError(ValueError):
    """An adapter that cannot be merged into its base (prefix tuning)."""


def adapter_dir_of(path: str | Path) -> Path:
    """The adapter directory given a job directory or an adapter directory."""
    path = Path(path)
    if (path / "adapter_config.json").is_file():
        return path
    if (path / "adapter" / "adapter_config.json").is_file():
        return path / "adapter"
    raise FileNotFoundError(
        f"{path}: no adapter here (expected adapter_config.json in it or in its adapter/); "
        "a full fine-tune is already a complete model and needs no merge"
    )


def merge_adapter(path: str | Path, out_dir: str | Path) -> Path:
    """Merge the adapter at ``path`` (a job dir or an adapter dir) into its base model and
    save the result to ``out_dir``. Returns ``out_dir``.

    The base is loaded unquantized even for a QLoRA adapter (merging into 4-bit weights
    would lose the adapter's precision); in bf16 when the base was saved in bf16, else fp32.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    adapter = adapter_dir_of(path)
    adapter_config = json.loads((adapter / "adapter_config.json").read_text())
    if adapter_config.get("peft_type") == "PREFIX_TUNING":
        raise MergeError(f"{adapter}: {PREFIX_NOT_MERGEABLE}")
    base = adapter_config["base_model_name_or_path"]
    cfg = AutoConfig.from_pretrained(base)
    dtype = (
        torch.bfloat16
        if getattr(cfg, "dtype", None) in (torch.bfloat16, "bfloat16")
        else torch.float32
    )
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out, safe_serialization=True)
    tok_src = adapter if (adapter / "tokenizer_config.json").is_file() else Path(base)
    AutoTokenizer.from_pretrained(str(tok_src)).save_pretrained(out)
    (out / "ftm_merged_from.json").write_text(
        json.dumps({"adapter": str(adapter), "base_model": base}, indent=2) + "\n"
    )
    return out
