"""Real weights for the Together emulator's download route (download.py).

A job trained on the emulator's tiny base model (``catalog.TINY_MODEL``: ftm's tiny Llama,
built on the fly from providers/local/tiny_model.py, no download) gets real Hugging Face
weights: a PEFT LoRA adapter (seeded by the job and step, so the same request always gets
the same bytes), the adapter merged into the base, or for a full fine-tune a complete
model. Each is packed as Together packs its downloads, a zstandard-compressed tar
(``.tar.zst``) with the files at its top level.

Everything built is cached under the store's root (the emulator's data directory): the
base model once, each archive once. Builds go to a temporary name first and are renamed
into place, so a crash never leaves a half-built cache entry. Torch, transformers and peft
(the ``local`` extra) are imported only when weights are first asked for.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import threading
import zlib
from pathlib import Path
from typing import Any

from app.sandbox.errors import ApiError
from app.sandbox.together.catalog import TINY_MODEL

ARCHIVE_SUFFIX = ".tar.zst"
OUTPUTS = ("adapter", "merged", "full")
"""What an archive holds: a LoRA adapter, the adapter merged into its base, or the
complete model of a full fine-tune."""
FULL_TUNE_NOISE = 0.05
"""How far a full fine-tune's weights move from the base's (relative): enough to change
its outputs, not so much that it stops being the same model."""


class WeightsStore:
    """The emulator's cache of built weights, under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        """One build at a time: a second request for the same archive waits for the
        first and then finds it cached."""

    @property
    def base_dir(self) -> Path:
        """Where the tiny base model is (built on first use)."""
        return self.root / "tiny-llama"

    def base(self) -> Path:
        """The tiny base model's directory, built the first time."""
        with self._lock:
            return self._base()

    def _base(self) -> Path:
        if (self.base_dir / "config.json").is_file():
            return self.base_dir
        from providers.local.demo_data import corpus_texts
        from providers.local.tiny_model import build_tiny_model

        tmp = self._fresh_tmp("tiny-llama")
        build_tiny_model(tmp, corpus_texts())
        os.replace(tmp, self.base_dir)
        return self.base_dir

    def archive(self, job_id: str, training_type: dict[str, Any], output: str, step: int) -> Path:
        """The ``.tar.zst`` of ``output`` for the job's checkpoint at ``step``."""
        if output not in OUTPUTS:
            raise ValueError(f"unknown output {output!r}; one of {OUTPUTS}")
        # The settings are in the name: emulators seeded alike (tests) share a store and
        # reuse job ids, for jobs that may be trained differently.
        settings = zlib.crc32(json.dumps(training_type, sort_keys=True).encode())
        name = f"{job_id}-{output}-{step}-{settings:08x}"
        path = self.root / "archives" / f"{name}{ARCHIVE_SUFFIX}"
        with self._lock:
            if path.is_file():
                return path
            base = self._base()
            work = self._fresh_tmp(name)
            try:
                seed = zlib.crc32(f"{job_id}:{step}".encode())
                _build(base, training_type, output, seed, work)
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp_archive = path.with_name(path.name + f".{os.getpid()}.tmp")
                pack(work, tmp_archive)
                os.replace(tmp_archive, path)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            return path

    def _fresh_tmp(self, name: str) -> Path:
        tmp = self.root / f".{name}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)  # left by a crashed build
        tmp.parent.mkdir(parents=True, exist_ok=True)
        return tmp


def _build(base: Path, training_type: dict[str, Any], output: str, seed: int, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # Weights come from this generator only: the same job and step give the same bytes,
    # whichever archive is built first (the merged model is exactly base + adapter).
    generator = torch.Generator().manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    with torch.no_grad():
        if output == "full":
            for weight in model.parameters():
                noise = torch.randn(weight.shape, generator=generator)
                weight.add_(noise * weight.std() * FULL_TUNE_NOISE)
            model.save_pretrained(out, safe_serialization=True)
        else:
            peft_model = _lora(model, training_type, generator)
            if output == "adapter":
                peft_model.save_pretrained(out, safe_serialization=True)
                _name_the_base(out / "adapter_config.json")
            else:
                peft_model.merge_and_unload().save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)


def _lora(model: Any, training_type: dict[str, Any], generator: Any) -> Any:
    """A LoRA adapter as the job's settings describe it, with random weights in both
    matrices (scaled like a trained adapter's): PEFT's usual zero-initialised B would
    make it a no-op, unlike any trained adapter."""
    import torch
    from peft import LoraConfig, get_peft_model

    modules = str(training_type.get("lora_trainable_modules") or "all-linear")
    rank = int(training_type.get("lora_r") or 8)
    config = LoraConfig(
        r=rank,
        lora_alpha=int(training_type.get("lora_alpha") or 2 * rank),
        lora_dropout=float(training_type.get("lora_dropout") or 0.0),
        target_modules="all-linear" if modules == "all-linear" else modules.split(","),
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    for name, weight in sorted(peft_model.named_parameters()):
        if "lora_A" in name or "lora_B" in name:
            fan_in = weight.shape[1]
            noise = torch.randn(weight.shape, generator=generator)
            weight.copy_(noise / fan_in**0.5)
    return peft_model


def _name_the_base(config_path: Path) -> None:
    # PEFT records the directory the base was loaded from, a path on the emulator's
    # machine; the service names the base model by its catalog name.
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = TINY_MODEL
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def pack(directory: Path, archive: Path) -> None:
    """``directory``'s files as a zstandard-compressed tar, files at its top level."""
    import zstandard

    with archive.open("wb") as raw, zstandard.ZstdCompressor(level=3).stream_writer(raw) as zst:
        with tarfile.open(fileobj=zst, mode="w|") as tar:
            for path in sorted(directory.iterdir()):
                tar.add(path, arcname=path.name)


def unavailable(model: str) -> ApiError:
    """The emulator's answer for a job on a model it has no weights for."""
    return ApiError(
        400,
        f"The ftm sandbox has real weights only for jobs trained on {TINY_MODEL}, not "
        f"{model}; train on {TINY_MODEL} to download weights from the emulator.",
        param="ft_id",
        code="weights_unavailable",
    )
