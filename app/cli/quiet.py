"""Keep the libraries' chatter out of the user's terminal: while a command loads models
(`ftm eval` and `ftm migrate` on a local model), transformers' "Loading weights" bars,
FutureWarnings and bitsandbytes' "pip install kernels" advice go to a log file in
``<home>/logs`` instead. The terminal shows only what ftm means to say, plus one line
naming the log when something was written to it.

Everything a library can write to is redirected: ``sys.stderr`` (tqdm bars, warnings,
logging's last-resort handler), logging handlers bound to the terminal, and file
descriptor 2 (native code). ftm's own messages go to stdout, or are printed after the
block (errors), so they are unaffected.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import click


def library_log_path(command: str) -> Path:
    """A new log file for one run of ``command``: ``<home>/logs/<command>-<UTC time>-<pid>.log``."""
    from app.settings import home_dir

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return home_dir() / "logs" / f"{command}-{stamp}-{os.getpid()}.log"


@contextlib.contextmanager
def library_output_to_log(command: str) -> Iterator[Path | None]:
    """Send everything libraries print during the block to a log; yields its path.

    On the way out (an error included), names the log on stderr if anything landed in
    it, and deletes it if not. Where no log can be written (a read-only home), output is
    left as it is: the command matters more than its quiet.
    """
    path = library_log_path(command)
    header = f"ftm {command}: library output, {datetime.now(UTC).isoformat()}\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        log = open(path, "w", encoding="utf-8", errors="replace", buffering=1)  # noqa: SIM115
    except OSError:
        yield None
        return
    try:
        log.write(header)
        with _into(log, sys.stderr):
            yield path
    finally:
        log.close()
        if path.stat().st_size > len(header.encode()):
            click.echo(f"library messages: {path}", err=True)
        else:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def _into(log: TextIO, terminal: TextIO) -> Iterator[None]:
    rebound = _rebind_handlers({id(terminal), id(sys.__stderr__)}, log)
    saved_fd = _redirect_fd2(log)
    try:
        with contextlib.redirect_stderr(log), warnings.catch_warnings():
            # warnings shown while loading (FutureWarning and the like) go to the log too,
            # whatever `showwarning` a library installed
            warnings.showwarning = lambda msg, cat, filename, lineno, file=None, line=None: (
                log.write(warnings.formatwarning(msg, cat, filename, lineno, line))
            )
            yield
    finally:
        _restore_fd2(saved_fd)
        for handler, stream in rebound:
            handler.setStream(stream)
        # handlers libraries created inside the block picked up the log as their stream;
        # give them the terminal back before the log is closed
        _rebind_handlers({id(log)}, terminal)


def _stream_handlers() -> Iterator[logging.StreamHandler]:
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    for lg in loggers:
        for handler in lg.handlers:
            if type(handler) is logging.StreamHandler:  # not file handlers: they log already
                yield handler


def _rebind_handlers(streams: set[int], to: TextIO) -> list[tuple[logging.StreamHandler, TextIO]]:
    rebound = []
    for handler in _stream_handlers():
        if id(handler.stream) in streams:
            rebound.append((handler, handler.setStream(to)))
    return rebound


def _redirect_fd2(log: TextIO) -> int | None:
    """Point file descriptor 2 at the log (native code writes there); the old one, or None."""
    try:
        sys.__stderr__.flush()
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        return saved
    except (OSError, AttributeError, ValueError):  # no fd 2 (a daemon): nothing to redirect
        return None


def _restore_fd2(saved: int | None) -> None:
    if saved is None:
        return
    os.dup2(saved, 2)
    os.close(saved)
