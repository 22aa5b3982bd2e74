"""Download a Together fine-tune's weights and unpack them in Hugging Face's layout.

Together serves a job's weights at ``GET /v1/finetune/download`` as one zstandard-
compressed tar (``.tar.zst``): for a LoRA job its ``adapter`` or the ``merged`` model, for
a full fine-tune the model (``checkpoint=model_output_path``). `download_weights` streams it
through the SDK (``fine_tuning.with_streaming_response.content``: the body is written to
disk as it arrives, never held whole in memory), unpacks it, checks the files
(providers/weights_layout.py) and only then moves the directory into place.

Atomic: the archive and the unpacked files live under hidden names beside ``dest`` until
they have passed the checks; a cut-off download, a corrupt archive or wrong contents leave
``dest`` as it was (absent, or the previous download) and nothing else behind.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from providers import weights_layout
from providers.errors import ProviderError, UnsupportedOperation
from providers.types import Artifact

if TYPE_CHECKING:
    from together import Together

CHUNK_BYTES = 1 << 20
KINDS = weights_layout.KINDS


class WeightsDownloadError(ProviderError):
    """The weights could not be downloaded or are not usable; nothing was written."""


def download_weights(
    client: Together,
    ft_id: str,
    dest: str | Path,
    kind: str = "adapter",
    *,
    checkpoint_step: int | None = None,
) -> dict[str, Any]:
    """Download job ``ft_id``'s weights of ``kind`` (``adapter`` or ``merged``; for a full
    fine-tune, ``merged`` is its model) into the directory ``dest``, replacing a previous
    download there. ``checkpoint_step``: an intermediate checkpoint instead of the final
    weights. Returns what was checked (format, base model, tensors, bytes downloaded).

    Raises:
        UnsupportedOperation: the job has no weights of that kind (an adapter of a full
            fine-tune).
        WeightsDownloadError: Together refused, the transfer failed, or the archive or its
            files are damaged; ``dest`` is untouched.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind of weights {kind!r}; one of {', '.join(KINDS)}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = _checkpoint_for(client, ft_id, kind)
    hidden = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:8]}"
    archive = hidden.with_name(hidden.name + ".tar.zst")
    staging = hidden.with_name(hidden.name + ".unpacking")
    try:
        size = _fetch(client, ft_id, checkpoint, checkpoint_step, archive)
        unpack(archive, staging)
        root = _content_root(staging, kind)
        try:
            meta = weights_layout.check(root, kind)
        except weights_layout.WeightsLayoutError as exc:
            raise WeightsDownloadError(
                f"The {kind} downloaded from Together for job {ft_id} is not usable: {exc}. "
                f"Nothing was written to {dest}; download it again, and if it fails the "
                "same way ask Together support about the job's output."
            ) from None
        _replace(root, dest)
    finally:
        archive.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    return {**meta, "bytes": size, "checkpoint": checkpoint, "checkpoint_step": checkpoint_step}


def download_artifact(client: Together, ft_id: str, dest: Path, kind: str) -> Artifact:
    """`download_weights` as the provider contract returns it
    (`Provider.download_weights`): a Together provider's method is this one call."""
    meta = download_weights(client, ft_id, dest, kind)
    return Artifact(kind=kind, uri=str(dest), meta=meta)


def _checkpoint_for(client: Together, ft_id: str, kind: str) -> str:
    """Together's name for ``kind`` on this job, which depends on how it was trained."""
    from together import APIConnectionError, APIStatusError

    try:
        job = client.fine_tuning.retrieve(ft_id)
    except APIStatusError as exc:
        raise _refused(exc, ft_id) from None
    except APIConnectionError as exc:
        raise _unreachable(exc, ft_id) from None
    training_type = getattr(getattr(job, "training_type", None), "type", "Lora")
    if training_type == "Full":
        if kind == "adapter":
            raise UnsupportedOperation(
                f"Together job {ft_id} is a full fine-tune: it has no adapter; download "
                "its model instead (kind 'merged')."
            )
        return "model_output_path"
    return kind


def _fetch(client: Together, ft_id: str, checkpoint: str, step: int | None, archive: Path) -> int:
    """Stream the archive to ``archive``; returns its size, checked against the
    Content-Length the service announced."""
    import httpx
    from together import APIConnectionError, APIStatusError, omit

    written = 0
    try:
        with client.fine_tuning.with_streaming_response.content(
            ft_id=ft_id,
            checkpoint=checkpoint,  # type: ignore[arg-type]  # one of the SDK's literals
            checkpoint_step=omit if step is None else step,
        ) as response:
            announced = int(response.headers.get("content-length") or 0)
            with archive.open("wb") as out:
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    out.write(chunk)
                    written += len(chunk)
    except APIStatusError as exc:
        raise _refused(exc, ft_id) from None
    except (APIConnectionError, httpx.HTTPError) as exc:
        raise _unreachable(exc, ft_id, written) from None
    if announced and written != announced:
        raise WeightsDownloadError(
            f"The download of Together job {ft_id}'s {checkpoint} stopped after {written} of "
            f"{announced} bytes; nothing was written. Run the download again.",
            retryable=True,
        )
    return written


def unpack(archive: Path, into: Path) -> None:
    """Extract a ``.tar.zst`` into the new directory ``into``: regular files and
    directories only, every path inside ``into`` (tarfile's ``data`` filter)."""
    import zstandard

    def regular_only(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        if not (member.isfile() or member.isdir()):
            raise tarfile.FilterError(f"{member.name!r} is not a regular file or directory")
        return tarfile.data_filter(member, path)

    into.mkdir(parents=True)
    try:
        with (
            archive.open("rb") as raw,
            zstandard.ZstdDecompressor().stream_reader(raw) as stream,
            tarfile.open(fileobj=stream, mode="r|") as tar,
        ):
            tar.extractall(into, filter=regular_only)
    except (zstandard.ZstdError, tarfile.TarError, EOFError) as exc:
        raise WeightsDownloadError(
            f"The weights archive from Together is not a readable .tar.zst ({exc}); it was "
            "damaged or cut off on the way. Nothing was written; download it again."
        ) from None


def _content_root(staging: Path, kind: str) -> Path:
    """Where the weights are in the unpacked archive: at its top level, or in the one
    directory it holds."""
    marker = weights_layout.ADAPTER_CONFIG if kind == "adapter" else "config.json"
    if (staging / marker).is_file():
        return staging
    entries = list(staging.iterdir())
    if len(entries) == 1 and (entries[0] / marker).is_file():
        return entries[0]
    names = ", ".join(sorted(e.name for e in entries)[:8]) or "nothing"
    raise WeightsDownloadError(
        f"The archive from Together holds no {kind} ({marker} not found; it holds: {names}). "
        "Nothing was written; check that the job trained the kind of weights asked for."
    )


def _replace(source: Path, dest: Path) -> None:
    """Move ``source`` to ``dest`` (same file system), replacing a previous download."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.old")
        os.replace(dest, old)
    os.replace(source, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _service_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(getattr(exc, "message", exc))


def _refused(exc: Any, ft_id: str) -> ProviderError:
    status = getattr(exc, "status_code", None)
    return WeightsDownloadError(
        f"Together refused the weights of job {ft_id} (HTTP {status}): {_service_message(exc)}",
        retryable=status is not None and (status == 429 or status >= 500),
    )


def _unreachable(exc: Exception, ft_id: str, written: int = 0) -> ProviderError:
    cut = f" after {written} bytes" if written else ""
    return WeightsDownloadError(
        f"The download of Together job {ft_id}'s weights failed{cut} "
        f"({type(exc).__name__}: {exc}); nothing was written. Check the connection and "
        "run it again.",
        retryable=True,
    )
