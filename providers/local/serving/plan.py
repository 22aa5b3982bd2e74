"""Pure decisions for serving a local model: what a client calls it, which server (base)
serves it, and how (vLLM's multi-LoRA server or ftm's transformers one)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from providers.local.jobdir import BASE_LOADING_FILE

VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
"""The values vLLM accepts for ``--max-lora-rank``."""
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Layout names a job directory gives its result (providers.local.jobdir): the job's own
# directory names the model better.
_LAYOUT_NAMES = {"adapter", "model", "merged"}


@dataclass(frozen=True)
class Served:
    """One model as a server serves it."""

    name: str
    """What a client sends as ``model`` to reach it."""
    base: str
    """The base model the server loads (a directory or a hub id)."""
    adapter: str | None
    """The PEFT adapter directory applied on ``base``; None: ``base`` itself answers."""
    server_key: str
    """The directory name of the server that serves it: one per base loaded one way."""


def _stem(path: Path) -> str:
    name = path.parent.name if path.name in _LAYOUT_NAMES and path.parent.name else path.name
    return _UNSAFE.sub("-", name).strip("-")[:40] or "model"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:8]


def served_name(model: str) -> str:
    """The name a model is served under: readable (its job's or directory's name) and
    unique (a digest of its full path), the same every time it is deployed."""
    path = Path(model)
    return f"{_stem(path)}-{_digest(model)}"


def plan_for(model: str) -> Served:
    """How ``model`` (an adapter directory, a merged or full model directory, or a hub
    id) is served. Adapters on one base share a server, unless their bases are loaded
    differently (a QLoRA adapter's base is 4-bit: its record is part of the key)."""
    path = Path(model)
    config = path / "adapter_config.json"
    if config.is_file():
        base = json.loads(config.read_text())["base_model_name_or_path"]
        loading_file = path / BASE_LOADING_FILE
        loading = loading_file.read_text() if loading_file.is_file() else ""
        parts = [base, _canonical(loading)]
        if not vllm_can_serve(path):
            # never on a base's vLLM server, nor with adapters of another method (one
            # PeftModel holds adapters of one method): a transformers server per method
            parts.append(adapter_method(path))
        key = f"{_stem(Path(base))}-{_digest(*parts)}"
        return Served(served_name(model), base, model, key)
    return Served(served_name(model), model, None, f"{_stem(path)}-{_digest(model, '')}")


def adapter_method(adapter: str | Path) -> str:
    """``lora``, ``dora``, ``ia3``, ``prefix_tuning``...: the adapter's PEFT method."""
    config = json.loads((Path(adapter) / "adapter_config.json").read_text())
    method = str(config.get("peft_type", "LORA")).lower()
    return "dora" if method == "lora" and config.get("use_dora") else method


def vllm_can_serve(adapter: str | Path) -> bool:
    """Whether vLLM's multi-LoRA server can load the adapter: plain LoRA only (not DoRA,
    IA3 or prefix tuning, which ftm's transformers server serves through PEFT)."""
    return adapter_method(adapter) == "lora"


def _canonical(record: str) -> str:
    return json.dumps(json.loads(record), sort_keys=True) if record.strip() else ""


def choose_backend(device: str, vllm_installed: bool) -> tuple[str, str]:
    """(backend, why): vLLM where it can run (a CUDA device and the package), else ftm's
    transformers server."""
    if device.startswith("cuda") and vllm_installed:
        return "vllm", "CUDA and the vllm package are present"
    if device.startswith("cuda"):
        return "transformers", "the vllm package is not installed"
    return "transformers", "vLLM needs a CUDA device; serving on the CPU"


def lora_rank_limit(ranks: list[int]) -> int:
    """The smallest ``--max-lora-rank`` vLLM accepts that fits every adapter's rank."""
    needed = max(ranks, default=VLLM_LORA_RANKS[0])
    for allowed in VLLM_LORA_RANKS:
        if allowed >= needed:
            return allowed
    raise ValueError(f"LoRA rank {needed} is above vLLM's largest ({VLLM_LORA_RANKS[-1]})")


def vllm_command(
    base: str,
    base_name: str,
    adapters: Mapping[str, str],
    ranks: list[int],
    port: int,
    host: str = "127.0.0.1",
    executable: str = "vllm",
) -> list[str]:
    """``vllm serve`` for ``base`` (served as ``base_name``) with each adapter
    (name -> directory) as a LoRA module, on ``host:port``. More adapters are added
    while it runs by POST /v1/load_lora_adapter (the manager sets
    VLLM_ALLOW_RUNTIME_LORA_UPDATING), so room is left for a few."""
    command = [executable, "serve", base, "--host", host, "--port", str(port)]
    command += ["--served-model-name", base_name, "--enable-lora"]
    command += ["--max-lora-rank", str(lora_rank_limit(ranks))]
    command += ["--max-loras", str(max(4, len(adapters)))]
    if adapters:
        command += ["--lora-modules", *(f"{name}={path}" for name, path in adapters.items())]
    return command
