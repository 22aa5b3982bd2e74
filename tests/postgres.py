"""A real PostgreSQL server for the test session: Debian's `postgresql` package, started in
a temporary directory on a free loopback port and stopped (and deleted) after.

Each test gets a database of its own, cloned from a template that already carries the
newest schema (cloning takes milliseconds; migrating each one would take a second). The
server is tuned for throw-away data (no fsync), never for anything kept.

Run as root (CI is), PostgreSQL refuses to start; the server then runs as the package's
`postgres` user, which owns the temporary directory.

No stray server: the postmaster is the session's own child process with a parent-death
signal, so it stops however the session ends (its fixture's teardown, Ctrl-C, or a
SIGKILL from a CI timeout, which runs no teardown at all).
"""

from __future__ import annotations

import ctypes
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROLE = "ftm"
TEMPLATE = "ftm_template"
# Tests that run several processes (two gateways, pollers, workers) each hold a pool.
MAX_CONNECTIONS = 300
START_TIMEOUT_S = 60
# Tuned for throw-away data: nothing here needs to survive a crash.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "max_connections": str(MAX_CONNECTIONS),
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "64MB",
}
_PR_SET_PDEATHSIG = 1
DIR_PREFIX = "ftm-pg-"
# A directory this old without a running server is a killed session's (one being set up
# is minutes younger): nothing else will delete it.
LEFTOVER_AGE_S = 600


class PostgresMissing(RuntimeError):
    pass


def binaries_dir() -> Path:
    """Where initdb and postgres are: $FTM_TEST_PG_BIN, PATH, or Debian's versioned dir."""
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


def _remove_stopped_leftovers() -> None:
    """Delete what sessions killed outright left behind: their servers stopped with them
    (see `_die_with_parent`), but nothing ran to delete their directories."""
    for leftover in Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}*"):
        running = (leftover / "data" / "postmaster.pid").exists()
        if not running and time.time() - leftover.stat().st_mtime > LEFTOVER_AGE_S:
            shutil.rmtree(leftover, ignore_errors=True)


def _die_with_parent() -> None:
    """In the server's process before exec: SIGQUIT (PostgreSQL's immediate shutdown) when
    the test session's process dies. Runs after subprocess switched the user, which would
    otherwise have cleared it."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGQUIT)


@dataclass
class PostgresServer:
    root: Path
    port: int
    password: str
    process: subprocess.Popen[bytes]
    _serial: int = field(default=0)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # One background thread creates the next test's database and drops the last one's.
    _housekeeper: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="ftm-test-pg")
    )
    _spare: Future[str] | None = None

    @classmethod
    def start(cls, *, template: bool = True) -> PostgresServer:
        """Initialise and start a server; ``template=False`` skips the migrated template
        (for a test of the server itself)."""
        bindir = binaries_dir()
        _remove_stopped_leftovers()
        root = Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
        try:
            return cls._start_in(root, bindir, template=template)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise

    @classmethod
    def _start_in(cls, root: Path, bindir: Path, *, template: bool) -> PostgresServer:
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
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            user=user,
        )
        pwfile.unlink()
        port = _free_port()
        settings = [
            arg for name, value in SERVER_SETTINGS.items() for arg in ("-c", f"{name}={value}")
        ]
        with open(root / "server.log", "wb") as log:
            process = subprocess.Popen(
                [
                    str(bindir / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(port),
                    "-k",
                    str(root),
                    *settings,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=user,
                preexec_fn=_die_with_parent,
                # Ctrl-C goes to pytest alone, whose teardown then stops the server in order.
                start_new_session=True,
            )
        server = cls(root=root, port=port, password=password, process=process)
        try:
            server._wait_until_accepting()
            if template:
                server._make_template()
        except BaseException:
            server.stop()
            raise
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

    def _wait_until_accepting(self) -> None:
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                log = (self.root / "server.log").read_text(errors="replace")
                raise RuntimeError(f"the test PostgreSQL server exited at start:\n{log}")
            try:
                with self._admin():
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

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
        returns its URL.

        Migrated ones come ready-made: the next is cloned in the background while this
        one's test runs (the server works on the core the test leaves idle), so a test
        waits for neither its database's creation nor its predecessor's drop."""
        if not migrated:
            return self.url(self._create("template0"))
        spare, self._spare = self._spare, self._housekeeper.submit(self._create, TEMPLATE)
        return self.url(spare.result() if spare else self._create(TEMPLATE))

    def drop_database(self, url: str) -> None:
        """Drop it in the background (the test is over; nothing waits for it)."""
        self._housekeeper.submit(self._drop, url.rsplit("/", 1)[1])

    def _create(self, template: str) -> str:
        with self._lock:
            self._serial += 1
            name = f"t{os.getpid()}_{self._serial}"
        with self._admin() as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        return name

    def _drop(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        """Immediate shutdown (nothing here is worth a checkpoint), then delete everything."""
        self._housekeeper.shutdown(wait=False, cancel_futures=True)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)
