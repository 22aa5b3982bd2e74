"""Remember uploaded training files by content hash, so the same file is not uploaded twice.

The provider depends only on the small `UploadCache` protocol; `SqlUploadCache` keeps the
entries in the ``uploaded_files`` table (the app passes it an engine), `MemoryUploadCache`
keeps them for the life of the process.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine, select

from db.engine import read_session, write_session
from db.models import UploadedFile

PROVIDER = "openai"


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class UploadCache(Protocol):
    def get(self, endpoint: str, content_hash: str, purpose: str) -> str | None:
        """The remote file id uploaded before for this content, if any."""

    def put(self, endpoint: str, content_hash: str, purpose: str, file_id: str, size: int) -> None:
        """Remember an upload."""

    def forget(self, endpoint: str, content_hash: str, purpose: str) -> None:
        """Drop an entry whose remote file has gone."""


class MemoryUploadCache:
    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, str], str] = {}

    def get(self, endpoint: str, content_hash: str, purpose: str) -> str | None:
        return self._entries.get((endpoint, content_hash, purpose))

    def put(self, endpoint: str, content_hash: str, purpose: str, file_id: str, size: int) -> None:
        self._entries[(endpoint, content_hash, purpose)] = file_id

    def forget(self, endpoint: str, content_hash: str, purpose: str) -> None:
        self._entries.pop((endpoint, content_hash, purpose), None)


class SqlUploadCache:
    """Upload cache in the ``uploaded_files`` table, shared by every ftm process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _where(self, endpoint: str, content_hash: str, purpose: str):
        return (
            UploadedFile.provider == PROVIDER,
            UploadedFile.endpoint == endpoint,
            UploadedFile.content_hash == content_hash,
            UploadedFile.purpose == purpose,
        )

    def get(self, endpoint: str, content_hash: str, purpose: str) -> str | None:
        with read_session(self.engine) as session:
            row = session.scalars(
                select(UploadedFile).where(*self._where(endpoint, content_hash, purpose))
            ).first()
            return row.remote_file_id if row else None

    def put(self, endpoint: str, content_hash: str, purpose: str, file_id: str, size: int) -> None:
        with write_session(self.engine) as session:
            row = session.scalars(
                select(UploadedFile).where(*self._where(endpoint, content_hash, purpose))
            ).first()
            if row is None:
                row = UploadedFile(
                    provider=PROVIDER,
                    endpoint=endpoint,
                    content_hash=content_hash,
                    purpose=purpose,
                    remote_file_id=file_id,
                    bytes=size,
                )
            else:  # a stale entry (the remote file was deleted) gets the new id
                row.remote_file_id, row.bytes = file_id, size
            session.add(row)

    def forget(self, endpoint: str, content_hash: str, purpose: str) -> None:
        with write_session(self.engine) as session:
            for row in session.scalars(
                select(UploadedFile).where(*self._where(endpoint, content_hash, purpose))
            ):
                session.delete(row)
