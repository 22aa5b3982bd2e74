"""The application's database: one engine per URL, migrated to the newest schema on open.

Opening can fail for reasons the user fixes, not ftm: a URL that does not parse, a
database driver that is not installed, a file that is not a database, a database written
by a newer ftm. Each raises `DatabaseUnusable`, one line saying what is wrong, which
database (URL with the password masked, and the setting it came from) and what to do.
A database with a schema revision this ftm does not know is refused before anything
writes to it: never "upgraded" into a state neither version understands.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError

from app.environment import EnvironmentProblem
from app.settings import get_settings, mask_passwords, setting_source
from db.engine import make_engine

_engines: dict[str, Engine] = {}
_lock = threading.Lock()

# Python module of a database driver -> what to install for it (pip's name). The base
# install ships none but SQLite's, which comes with Python.
DRIVER_PACKAGES: dict[str, str] = {
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
    "asyncpg": "asyncpg",
    "pg8000": "pg8000",
    "pymysql": "pymysql",
    "MySQLdb": "mysqlclient",
    "mysql": "mysql-connector-python",
    "oracledb": "oracledb",
    "pyodbc": "pyodbc",
}


class DatabaseUnusable(EnvironmentProblem):
    """The configured database cannot be opened or used by this version of ftm."""


def engine_for(url: str) -> Engine:
    """The engine for ``url``, created and migrated on first use. Raises
    `DatabaseUnusable` when it cannot be opened or is newer than this ftm."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _open(url)
            _engines[url] = engine
        return engine


def get_engine() -> Engine:
    """The engine for the configured database, with migrations applied."""
    return engine_for(get_settings().resolved_database_url)


def database_origin(url: str) -> str:
    """Where the database URL ``url`` came from, in words."""
    settings = get_settings()
    if url != settings.resolved_database_url:
        return "given to ftm by its caller"
    if settings.database_url:
        return setting_source(("database_url",)).where.removeprefix("from ")
    home = setting_source(("home",))
    if home.env_var:
        return f"the default database in ftm's home, {home.env_var}={settings.home}"
    return f"the default database in ftm's home, {settings.home}"


def masked_url(url: str) -> str:
    """``url`` with its password shown as ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return mask_passwords(url)


@contextmanager
def looking_at(url: str) -> Iterator[Engine]:
    """An engine for ``url`` that neither migrates nor writes anything on connect (SQLite
    stays out of WAL mode), to look at a database before deciding to use it. Failures of
    the database within the block raise `DatabaseUnusable`, the password masked."""
    shown = masked_url(url)
    probe = _make_engine(url, shown, tune=False)
    try:
        yield probe
    except DBAPIError as exc:
        raise DatabaseUnusable(_describe_dbapi_error(exc, url, shown)) from None
    finally:
        probe.dispose()


def _open(url: str) -> Engine:
    from db import migrate  # alembic is slow to import; only opening a DB needs it

    shown = masked_url(url)
    # Look first, through connections that write nothing: a database this ftm refuses
    # must keep every byte (tuning SQLite for WAL alone rewrites the file's header).
    with looking_at(url) as probe:
        current = migrate.current_revision(probe)
    if current is not None and not migrate.is_known_revision(current):
        raise DatabaseUnusable(
            f"the database {shown} ({database_origin(url)}) was written by a newer ftm: "
            f"its schema revision {current!r} is unknown to this version (newest known: "
            f"{migrate.head_revision()!r}). It was left untouched. Use the newer ftm, "
            "or set FTM_DATABASE_URL to another database."
        )
    engine = _make_engine(url, shown)
    try:
        if current != migrate.head_revision():
            settings = get_settings()
            # 0006 turns paths under the data directory into storage-root references.
            migrate.upgrade(engine, storage=settings.file_store, data_dirs=[settings.home])
    except OperationalError as exc:  # read-only file, full disk, lost server; not a bug
        engine.dispose()
        raise DatabaseUnusable(_describe_dbapi_error(exc, url, shown)) from None
    except BaseException:
        engine.dispose()
        raise
    return engine


def _make_engine(url: str, shown: str, *, tune: bool = True) -> Engine:
    """`make_engine`, its failures said in the user's terms."""
    origin = database_origin(url)
    try:
        return make_engine(url, tune=tune)
    except NoSuchModuleError:
        kind = url.split(":", 1)[0]
        # Hosting services still hand out postgres:// URLs, which SQLAlchemy dropped.
        fix = (
            "Write it as postgresql://..."
            if kind == "postgres"
            else "Use sqlite:////path/to/ftm.db or postgresql://user:password@host/dbname."
        )
        raise DatabaseUnusable(
            f"the database URL {shown} ({origin}) names a kind of database ftm does not "
            f"know ({kind!r}). {fix}"
        ) from None
    except ArgumentError:
        raise DatabaseUnusable(
            f"the database URL {shown!r} ({origin}) is not a valid URL. Write it as "
            "sqlite:////path/to/ftm.db or postgresql://user:password@host/dbname."
        ) from None
    except ModuleNotFoundError as exc:
        module = (exc.name or "").split(".")[0]
        package = DRIVER_PACKAGES.get(module, module)
        raise DatabaseUnusable(
            f"the database {shown} ({origin}) needs the Python driver {module!r}, which "
            f'is not installed. Install it: pip install "{package}".'
        ) from None
    except OSError as exc:  # the SQLite file's directory cannot be made
        raise DatabaseUnusable(
            f"cannot create the directory of the database {shown} ({origin}): "
            f"{(exc.strerror or str(exc)).lower()}. Point it at a directory you can write."
        ) from None


def _describe_dbapi_error(exc: DBAPIError, url: str, shown: str) -> str:
    origin = database_origin(url)
    # The driver's own words, first line only: SQLAlchemy appends SQL and a help link.
    reason = (str(exc.orig or exc).strip().splitlines() or [type(exc).__name__])[0]
    password = _password(url)
    if password:  # a driver may echo the connection string
        reason = reason.replace(password, "***")
    reason = mask_passwords(reason)
    if "file is not a database" in reason:
        what_to_do = (
            "Move the file aside (ftm then starts a new database), or set "
            "FTM_DATABASE_URL to your database."
        )
        return f"the database {shown} ({origin}) is not an SQLite database. {what_to_do}"
    return (
        f"cannot use the database {shown} ({origin}): {reason}. Check that it exists "
        "and that you may read and write it, or set FTM_DATABASE_URL to another one."
    )


def _password(url: str) -> str | None:
    try:
        return make_url(url).password
    except ArgumentError:
        return None


def reset() -> None:
    """Dispose of engines and forget settings (tests that change FTM_HOME call this)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
    get_settings.cache_clear()
