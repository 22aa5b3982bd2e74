"""Gateway keys: what clients of `ftm serve` authenticate with.

A key is ``ftm_gw_`` followed by 256 random bits (43 url-safe characters). It is shown
once, when created; the database keeps only its sha256, a short non-secret prefix to tell
keys apart, and its dates.

Why sha256 and not a slow password hash (scrypt, bcrypt): those exist to make guessing a
*low-entropy* secret from its hash expensive. A 256-bit random token cannot be guessed,
slow hash or fast, so the slowness would buy nothing and would cost every gateway request
tens of milliseconds (the gateway's whole budget is ~2 ms added latency).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import select

from db.engine import read_session, write_session
from db.models import GatewayKey, utcnow

KEY_PREFIX = "ftm_gw_"
TOKEN_BYTES = 32  # 256 bits
DISPLAY_CHARS = 6
"""Characters of the random part kept as the display prefix: 36 of its 256 bits, enough to
tell a handful of keys apart, far too few to help guess the rest."""
LAST_USED_RESOLUTION = timedelta(minutes=1)
"""`last_used_at` is rewritten at most this often per key: a busy gateway must not write a
row on every request, and "last used" needs no finer grain."""
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class GatewayKeyError(Exception):
    """A key operation the user asked for cannot be done; the message says why and what
    to do."""


class DuplicateKeyName(GatewayKeyError):
    pass


class UnknownKeyName(GatewayKeyError):
    pass


class AlreadyRevoked(GatewayKeyError):
    pass


class InvalidKeyName(GatewayKeyError):
    pass


@dataclass(frozen=True)
class KeyInfo:
    """What can be shown about a key: never the key, never its hash."""

    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def live(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "name": self.name,
            "prefix": self.prefix,
            "created_at": iso(self.created_at),
            "last_used_at": iso(self.last_used_at),
            "revoked_at": iso(self.revoked_at),
            "live": self.live,
        }


@dataclass(frozen=True)
class CreatedKey:
    info: KeyInfo
    key: str
    """The key itself: this is the only time it exists outside the client."""


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _display_prefix(key: str) -> str:
    return key[: len(KEY_PREFIX) + DISPLAY_CHARS]


def _info(row: GatewayKey) -> KeyInfo:
    return KeyInfo(
        row.name,
        row.prefix,
        _aware(row.created_at),
        _aware(row.last_used_at) if row.last_used_at else None,
        _aware(row.revoked_at) if row.revoked_at else None,
    )


def _live(session, name: str) -> GatewayKey | None:
    query = select(GatewayKey).where(GatewayKey.name == name, GatewayKey.revoked_at.is_(None))  # type: ignore[union-attr]
    return session.exec(query).first()


def create(engine: Engine, name: str) -> CreatedKey:
    """Issue a key named ``name``. Raises DuplicateKeyName if a live key has that name."""
    if not NAME_PATTERN.match(name):
        raise InvalidKeyName(
            f"key name {name!r} is not usable: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    key = KEY_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    row = GatewayKey(name=name, key_hash=_hash(key), prefix=_display_prefix(key))
    duplicate = DuplicateKeyName(
        f"a live gateway key is already named {name!r}: choose another name, or revoke "
        f"it first (ftm keys revoke {name})"
    )
    try:
        with write_session(engine) as session:
            session.add(row)
    except sa.exc.IntegrityError:  # the unique index on live names: one truth, no race
        raise duplicate from None
    return CreatedKey(_info(row), key)


def list_keys(engine: Engine, *, include_revoked: bool = True) -> list[KeyInfo]:
    """Every key, oldest first."""
    with read_session(engine) as session:
        query = select(GatewayKey).order_by(GatewayKey.created_at, GatewayKey.id)  # type: ignore[arg-type]
        if not include_revoked:
            query = query.where(GatewayKey.revoked_at.is_(None))  # type: ignore[union-attr]
        return [_info(row) for row in session.exec(query)]


def revoke(engine: Engine, name: str) -> KeyInfo:
    """Revoke the live key named ``name``: from now on it is refused."""
    with write_session(engine) as session:
        row = _live(session, name)
        if row is None:
            revoked = session.exec(select(GatewayKey).where(GatewayKey.name == name)).first()
            if revoked is not None:
                raise AlreadyRevoked(f"gateway key {name!r} is already revoked")
            raise UnknownKeyName(f"no gateway key is named {name!r}: see ftm keys list")
        row.revoked_at = utcnow()
        session.add(row)
    return _info(row)


def verify(engine: Engine, key: str) -> str | None:
    """The name of the live key ``key`` is, or None (unknown, malformed or revoked).

    The row is found by the key's non-secret prefix, and the hashes compared in constant
    time, so how long this takes says nothing about how much of a guessed key was right.
    """
    if not key.startswith(KEY_PREFIX):
        return None
    digest = _hash(key)
    now = utcnow()
    with read_session(engine) as session:
        query = select(GatewayKey).where(
            GatewayKey.prefix == _display_prefix(key),
            GatewayKey.revoked_at.is_(None),  # type: ignore[union-attr]
        )
        match = None
        for row in session.exec(query):
            if hmac.compare_digest(row.key_hash, digest):
                match = row
        if match is None:
            return None
        name, key_id, last_used = match.name, match.id, match.last_used_at
    if last_used is None or _aware(last_used) <= now - LAST_USED_RESOLUTION:
        with write_session(engine) as session:
            session.execute(
                sa.update(GatewayKey).where(GatewayKey.id == key_id).values(last_used_at=now)  # type: ignore[arg-type]
            )
    return name


def _aware(value: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; they were written in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
