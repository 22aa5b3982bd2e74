"""`ftm serve`: the gateway in the foreground (see app/gateway/server.py)."""

from __future__ import annotations

import click

from app.cli.errors import UserError


@click.command("serve")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but loopback exposes the gateway to the network.",
)
@click.option("--port", default=8600, show_default=True, type=click.IntRange(0, 65535))
def serve(host: str, port: int) -> None:
    """Serve the promoted models over an OpenAI-compatible API: clients ask for
    model TASK:ALIAS (or TASK for its production alias) with a key from `ftm keys create`;
    a promotion or rollback reaches the next request. Ctrl-C (or SIGTERM) stops it after
    the request log is flushed."""
    from app.database import get_engine
    from app.gateway.runner import is_loopback, serve_forever
    from app.gateway.server import Gateway

    engine = get_engine()
    if not is_loopback(host):
        click.secho(
            f"warning: listening on {host}, not loopback: anyone who can reach this address "
            "and holds a gateway key can spend on your providers' accounts",
            err=True,
            fg="yellow",
        )

    def ready(url: str) -> None:
        click.echo(f"ftm gateway serving on {url} (Ctrl-C to stop)", err=False)

    try:
        serve_forever(Gateway(engine), host, port, ready)
    except OSError as exc:
        raise UserError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port "
            "or stop what holds it"
        ) from None
