"""A real PostgreSQL server for the test session: Debian's `postgresql` package, started in
a temporary directory on a free loopback port and stopped (and deleted) after.

Each test gets a database of its own, cloned from a template that already carries the
newest schema (cloning takes milliseconds; migrating each one would take a second). The
server is tuned for throw-away data (no fsync), never for anything kept.

Run as root (CI is), PostgreSQL refuses to start; the server then runs as the package's
`postgres` user, which owns the temporary directory.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROLE = "ftm"
TEMPLATE = "ftm_template"
# Tests that run several processes (two gateways, pollers, workers) each hold a pool.
MAX_CONNECTIONS = 300


class PostgresMissing(RuntimeError):
    pass


def binaries_dir() -> Path:
    """Where initdb and pg_ctl are: $FTM_TEST_PG_BIN, PATH, or Debian's versioned dir."""
    configured = os.environ.get("FTM_TEST_PG_BIN")
    if configured:
        return Path(configured)
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if not candidates:
        raise PostgresMissing(
            "PostgreSQL is not installed: the PostgreSQL half of the tests needs its server "
            "binaries (Debian: apt-get install -y postgresql; or set FTM_TEST_PG_BIN)."
        )
    return Path(candidates[0]).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_as() -> str | None:
    """The user the server runs as: `postgres` when we are root, else ourselves."""
    return "postgres" if os.geteuid() == 0 else None


@dataclass
class PostgresServer:
    root: Path
    port: int
    password: str
    _serial: int = field(default=0)

    @classmethod
    def start(cls) -> PostgresServer:
        bindir = binaries_dir()
        root = Path(tempfile.mkdtemp(prefix="ftm-pg-"))
        user = _run_as()
        if user:
            shutil.chown(root, user)
        password = secrets.token_urlsafe(12)
        pwfile = root / "pw"
        pwfile.write_text(password + "\n")
        if user:
            shutil.chown(pwfile, user)
        data = root / "data"
        subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                ROLE,
                "--pwfile",
                str(pwfile),
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            check=True,
            capture_output=True,
            user=user,
        )
        pwfile.unlink()
        port = _free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {root} "
            f"-c max_connections={MAX_CONNECTIONS} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c shared_buffers=64MB"
        )
        subprocess.run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(root / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            ],
            check=True,
            capture_output=True,
            user=user,
        )
        server = cls(root=root, port=port, password=password)
        server._make_template()
        return server

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{ROLE}:{self.password}@127.0.0.1:{self.port}/{database}"

    def _admin(self):
        import psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=ROLE,
            password=self.password,
            dbname="postgres",
            autocommit=True,
        )

    def _make_template(self) -> None:
        from db import migrate
        from db.engine import make_engine

        with self._admin() as conn:
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        engine = make_engine(self.url(TEMPLATE))
        try:
            migrate.upgrade(engine)
        finally:
            engine.dispose()

    def create_database(self, *, migrated: bool = True) -> str:
        """A new, empty database (with the newest schema unless ``migrated=False``);
        returns its URL."""
        self._serial += 1
        name = f"t{os.getpid()}_{self._serial}"
        template = TEMPLATE if migrated else "template0"
        with self._admin() as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with self._admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        bindir = binaries_dir()
        subprocess.run(
            [str(bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop"],
            capture_output=True,
            user=_run_as(),
            timeout=60,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def wait_until_accepting(server: PostgresServer, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with server._admin():
                return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
