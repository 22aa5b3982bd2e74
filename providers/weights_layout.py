"""What downloaded weights must look like before ftm uses them, for any provider.

Two layouts, both Hugging Face's:

- ``adapter``: a PEFT adapter, ``adapter_config.json`` (with ``peft_type`` and
  ``base_model_name_or_path``) and ``adapter_model.safetensors`` holding LoRA tensors;
- ``merged``: a complete model, ``config.json`` and its ``*.safetensors`` weights.

Checked without torch: the JSON is parsed and every safetensors file's header is read and
its size checked against the tensors it declares, so a truncated or corrupt file is caught
here and not when a model fails to load later.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

KINDS = ("adapter", "merged")
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit


class WeightsLayoutError(ValueError):
    """The files are not the weights they should be; the message names the file."""


def safetensors_tensors(path: Path) -> dict[str, Any]:
    """The tensor table of a safetensors file, after checking that the file holds every
    byte its header declares."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise WeightsLayoutError(f"{path.name} is too short to be a safetensors file")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > min(MAX_HEADER_BYTES, size - 8):
            raise WeightsLayoutError(f"{path.name} has a corrupt safetensors header")
        try:
            header = json.loads(handle.read(header_len))
        except ValueError:
            raise WeightsLayoutError(f"{path.name} has a corrupt safetensors header") from None
    if not isinstance(header, dict):
        raise WeightsLayoutError(f"{path.name} has a corrupt safetensors header")
    tensors = {name: info for name, info in header.items() if name != "__metadata__"}
    end = max((int(info["data_offsets"][1]) for info in tensors.values()), default=0)
    if 8 + header_len + end != size:
        raise WeightsLayoutError(
            f"{path.name} is {size} bytes but its header declares {8 + header_len + end}: "
            "the file is truncated or corrupt"
        )
    return tensors


def _json_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise WeightsLayoutError(f"{path.name} is missing")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise WeightsLayoutError(f"{path.name} is not valid JSON") from None
    if not isinstance(data, dict):
        raise WeightsLayoutError(f"{path.name} is not a JSON object")
    return data


def check_adapter(directory: Path) -> dict[str, Any]:
    """Raise `WeightsLayoutError` unless ``directory`` holds a PEFT LoRA adapter; returns
    what ftm records about it (base model, rank, tensor count)."""
    config = _json_file(directory / ADAPTER_CONFIG)
    for key in ("peft_type", "base_model_name_or_path"):
        if not config.get(key):
            raise WeightsLayoutError(f"{ADAPTER_CONFIG} has no {key}")
    weights = directory / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise WeightsLayoutError(f"{ADAPTER_WEIGHTS} is missing")
    tensors = safetensors_tensors(weights)
    if not any("lora_" in name for name in tensors):
        raise WeightsLayoutError(f"{ADAPTER_WEIGHTS} holds no LoRA tensors")
    return {
        "format": "peft",
        "peft_type": config["peft_type"],
        "base_model": config["base_model_name_or_path"],
        "rank": config.get("r"),
        "tensors": len(tensors),
    }


def check_model(directory: Path) -> dict[str, Any]:
    """Raise `WeightsLayoutError` unless ``directory`` holds a complete safetensors model."""
    config = _json_file(directory / "config.json")
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise WeightsLayoutError("no *.safetensors weights next to config.json")
    tensors = sum(len(safetensors_tensors(path)) for path in files)
    return {"format": "safetensors", "model_type": config.get("model_type"), "tensors": tensors}


def check(directory: Path, kind: str) -> dict[str, Any]:
    """Check ``directory`` as weights of ``kind`` (one of `KINDS`)."""
    if kind == "adapter":
        return check_adapter(directory)
    if kind == "merged":
        return check_model(directory)
    raise ValueError(f"unknown kind of weights {kind!r}; one of {', '.join(KINDS)}")


def point_adapter_at_base(directory: Path, base_model: str) -> str:
    """Record ``base_model`` (a local directory, or a hub name) as the adapter's base, so
    PEFT loads it from there; returns the base it named before (keep it: it is the
    provider's own name for the base)."""
    path = directory / ADAPTER_CONFIG
    config = _json_file(path)
    before = str(config.get("base_model_name_or_path"))
    config["base_model_name_or_path"] = base_model
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return before
