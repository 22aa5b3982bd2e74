"""Whether a local run uses Liger's fused Triton kernels: one decision, from the
``liger_kernel`` option, the device and whether the package is installed. No torch import:
the CLI refuses ``liger_kernel=true`` before a job starts; the worker's trainer arguments
read the same answer.

Liger (the ``liger-kernel`` package, ``pip install 'ftm[gpu]'``) replaces a Llama-family
model's RMSNorm, rotary embedding and SwiGLU MLP with fused Triton kernels: fewer memory
round trips per layer, so faster steps and less activation memory. Triton compiles for
CUDA GPUs only. (trl 1.16 applies the layer kernels only: its own chunked LM head already
avoids the full-vocabulary logits that Liger's fused cross-entropy would.)

- ``auto`` (default): on when training on a CUDA GPU and the package is installed.
- ``true``: on; refused without a CUDA GPU or without the package (never dropped silently).
- ``false``: off.
"""

from __future__ import annotations

from importlib import metadata

LIGER_DISTRIBUTION = "liger-kernel"
LIGER_MIN_VERSION = (0, 3, 0)
"""transformers' `apply_liger_kernel` refuses older releases."""


class KernelError(ValueError):
    """Liger kernels were asked for where they cannot run; the message says what to do."""


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def liger_installed() -> bool:
    """The ``liger-kernel`` package is installed in a version transformers accepts (read
    from its metadata: nothing is imported, Triton included)."""
    try:
        version = metadata.version(LIGER_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return False
    return _version_tuple(version) >= LIGER_MIN_VERSION


def use_liger_kernel(setting: str, device: str, installed: bool | None = None) -> bool:
    """Whether a run on ``device`` (cuda | cpu) with option ``liger_kernel=setting``
    (auto | true | false) applies Liger's kernels. ``installed``: whether the package is
    there (None: look, `liger_installed`).

    Raises:
        KernelError: ``true`` without a CUDA GPU or without the package.
    """
    setting = str(setting).lower()
    if setting == "false":
        return False
    if installed is None:
        installed = liger_installed()
    if device == "cuda" and installed:
        return True
    if setting != "true":
        return False
    if device != "cuda":
        raise KernelError(
            "liger_kernel=true needs a CUDA GPU (Liger's kernels are Triton, compiled for "
            "CUDA); this run trains on the CPU. Set liger_kernel=auto or false"
        )
    raise KernelError(
        "liger_kernel=true but the liger-kernel package is not installed (or older than "
        f"{'.'.join(map(str, LIGER_MIN_VERSION))}); install it with pip install 'ftm[gpu]', "
        "or set liger_kernel=auto or false"
    )
