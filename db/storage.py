"""Where the files the database refers to live: the storage root, and the one mapping
between a path on this machine and the reference the database keeps.

Nothing in the database names a path of one machine. Dataset files and job directories
live under a storage root, and the database keeps their place relative to it, as a POSIX
path inside one of ftm's areas: ``datasets/<sha256>`` (a dataset's normalized files,
addressed by content hash) and ``jobs/<uid>/...`` (a local job's directory, checkpoints,
adapter). Each machine says where the root is (``[storage] root``), so a moved data
directory, a copied database or a teammate with another home finds the same files.
Anything else stays as it is: an absolute path outside the root (a user's own model
directory is theirs), a hub id (``owner/name``), a hosted model id (``ft:...``).

The root is a local directory (by default ftm's home; a mounted shared directory for a
team) or an fsspec URL (``s3://bucket/ftm``, ``file:///mnt/ftm``, ``memory://ftm``). With
a URL root, files are written under a local mirror (``cache_dir``) and copied to the URL
(`publish`); a reference is read by copying it down into the mirror first
(`local_path`), because training and inference need real files.

This module lives in db/ (it is the database's way of naming files) so that both app/ and
the local training worker in providers/ use it; it imports neither.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

AREAS = ("datasets", "jobs")
"""Top-level directories of the root that ftm writes, whose entries become references."""

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_REF = re.compile(r"^(datasets/[0-9a-f]{64}|jobs/[0-9a-f]{32})(/[^\\]*)?$")


class StorageMissing(FileNotFoundError):
    """A referenced file is not under this machine's storage root. The message says which
    file, the root looked in, and what to set."""


def is_url(root: str) -> bool:
    return bool(_URL.match(root))


def is_ref(value: str | None) -> bool:
    """Whether ``value`` is a root reference rather than a path, hub id or hosted id.

    A reference is relative and names a dataset by its content hash
    (``datasets/<64 hex>[/...]``) or a job by its uid (``jobs/<32 hex>[/...]``): never a
    hub id (``owner/name``) nor a user's relative path by accident.
    """
    if not value:
        return False
    return _REF.match(value) is not None and ".." not in value.split("/")


@dataclass(frozen=True)
class Storage:
    """One machine's view of the storage root.

    Args:
        root: a local directory, or an fsspec URL.
        cache_dir: the local mirror of a URL root (unused for a local root).
    """

    root: str
    cache_dir: Path | None = None
    _fs: list[Any] = field(default_factory=list, compare=False, repr=False)

    @property
    def is_remote(self) -> bool:
        return is_url(self.root)

    @property
    def local_dir(self) -> Path:
        """Where files are on this machine: the root itself, or a URL root's mirror."""
        if not self.is_remote:
            return Path(self.root).expanduser().resolve()
        if self.cache_dir is None:
            raise ValueError(f"the storage root {self.root} is a URL: it needs a cache_dir")
        return Path(self.cache_dir).expanduser().resolve()

    def area(self, name: str) -> Path:
        """The local directory of one area (``datasets``, ``jobs``)."""
        return self.local_dir / name

    # -- path <-> reference -------------------------------------------------------------

    def ref_for(self, value: str | os.PathLike | None) -> str | None:
        """What the database keeps for ``value``: a reference when it is a path inside an
        area of this machine's root, else ``value`` unchanged (as a string)."""
        if value is None:
            return None
        text = os.fspath(value)
        if is_ref(text) or is_url(text) or not os.path.isabs(text):
            return text
        path = Path(os.path.abspath(text))
        for base in {self.local_dir, Path(os.path.realpath(self.local_dir))}:
            try:
                relative = path.relative_to(base).as_posix()
            except ValueError:
                try:
                    relative = Path(os.path.realpath(path)).relative_to(base).as_posix()
                except ValueError:
                    continue
            if is_ref(relative):
                return relative
        return text

    def resolve(self, value: str | None) -> str | None:
        """A stored value as this machine uses it: a reference becomes its local path
        (fetched from a URL root first); anything else is returned unchanged. For values
        that may be model ids (a job's fine-tuned model, a checkpoint, an alias's model)."""
        if value is None or not is_ref(value):
            return value
        return str(self.local_path(value))

    def where(self, value: str) -> Path:
        """The local place of ``value`` whether or not anything is there (a reference
        fetched from a URL root when it can be): for checks such as "is it an adapter"."""
        try:
            return self.local_path(value)
        except StorageMissing:
            return self.local_dir / PurePosixPath(value)

    def local_path(self, ref: str, *, what: str | None = None) -> Path:
        """The local path of ``ref`` (an absolute path is returned as it is).

        Raises:
            StorageMissing: nothing is at that place under this machine's root; ``what``
                (e.g. "dataset 'tickets'") names the owner in the message.
        """
        if not is_ref(ref):
            return Path(ref)
        local = self.local_dir / PurePosixPath(ref)
        if local.exists():
            return local
        if self.is_remote and self._fetch(ref, local):
            return local
        owner = f"{what}'s file" if what else "the file"
        raise StorageMissing(
            f"{owner} {ref} is not under the storage root {self.root}"
            f"{f' (mirrored in {self.local_dir})' if self.is_remote else ''}. "
            "Set [storage] root (FTM_STORAGE__ROOT) to the shared root where your team "
            "keeps it, or restore it there."
        )

    # -- URL roots ----------------------------------------------------------------------

    def url_of(self, ref: str) -> str:
        return posixpath.join(self.root.rstrip("/"), ref)

    def filesystem(self) -> Any:
        """The fsspec filesystem of a URL root (one per Storage)."""
        if not self._fs:
            try:
                import fsspec  # type: ignore[import-untyped]
            except ImportError:  # pragma: no cover - installed with the local extra
                raise ValueError(
                    f"the storage root {self.root} is a URL, which needs fsspec: "
                    "pip install fsspec (and the backend, e.g. s3fs)"
                ) from None
            fs, _ = fsspec.core.url_to_fs(self.root)
            self._fs.append(fs)
        return self._fs[0]

    def publish(self, path: str | os.PathLike) -> str | None:
        """Copy a file or directory under the local mirror to the URL root (nothing to do
        for a local root). Returns its reference (None when it is not under an area)."""
        ref = self.ref_for(path)
        if ref is None or not is_ref(ref):
            return None
        if self.is_remote:
            local = self.local_dir / PurePosixPath(ref)
            fs = self.filesystem()
            target = self.url_of(ref)
            files = (
                [(f, f"{target}/{f.relative_to(local).as_posix()}") for f in local.rglob("*")]
                if local.is_dir()
                else [(local, target)]
            )
            for file, url in sorted(files):
                if file.is_file():
                    # Object stores have no directories; a file:// root needs them made.
                    fs.makedirs(posixpath.dirname(url), exist_ok=True)
                    fs.put_file(str(file), url)
        return ref

    def _fetch(self, ref: str, local: Path) -> bool:
        fs = self.filesystem()
        source = self.url_of(ref)
        if not fs.exists(source):
            return False
        partial = local.with_name(f".{local.name}.{os.getpid()}.partial")
        partial.parent.mkdir(parents=True, exist_ok=True)
        if fs.isdir(source):
            for found in fs.find(source):
                rel = posixpath.relpath(_strip(fs, found), _strip(fs, source))
                target = partial / PurePosixPath(rel)
                target.parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(found, str(target))
        else:
            fs.get_file(source, str(partial))
        try:
            os.replace(partial, local)
        except OSError:  # another process fetched it first
            if not local.exists():
                raise
        return True


def _strip(fs: Any, path: str) -> str:
    return fs._strip_protocol(path).rstrip("/")


def storage_from_env(home: Path | None = None) -> Storage:
    """The storage as a process without ftm's settings sees it (a training worker):
    ``FTM_STORAGE__ROOT`` or the home directory (``FTM_HOME`` or the platform's)."""
    if home is None:
        if os.environ.get("FTM_HOME"):
            home = Path(os.environ["FTM_HOME"]).expanduser()
        else:
            import platformdirs

            home = Path(platformdirs.user_data_dir("ftm"))
    root = os.environ.get("FTM_STORAGE__ROOT") or str(home)
    return Storage(root=root, cache_dir=home / "storage-cache")
