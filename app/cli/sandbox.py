"""`ftm sandbox`: serve a local API emulator (OpenAI's, Together AI's with
``--provider together``, or OpenAI's in Azure OpenAI's shape with ``--provider azure``) in
the foreground."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import click

from app.cli.errors import UserError

DEFAULT_PORT = 8765


@dataclass(frozen=True)
class Emulation:
    """What ``--provider NAME`` serves, declared as data so the command reads these
    fields instead of comparing names."""

    title: str
    """The service, as messages name it."""
    together_only: bool = False
    """Only the Together emulator (in the foreground)."""
    azure_urls: bool = False
    """The OpenAI emulator's state served in Azure OpenAI's URL shape."""
    with_together: bool = False
    """Also serve the Together emulator, on --together-port."""
    options: frozenset[str] = frozenset()
    """The service-specific options it takes (``--sunset``, ``--org``,
    ``--base64-results``, ``--serve-fine-tunes``)."""
    state_subdir: str = ""
    """Where its OpenAI-shaped state lives under FTM_HOME/sandbox."""
    default_sunset: Callable[[], date] = field(default=lambda: _openai_cutoff())
    """The day job creation is refused when --sunset is not given."""


def _openai_cutoff() -> date:
    from app.sandbox.server import SERVICE_SUNSET

    return SERVICE_SUNSET


def _azure_cutoff() -> date:
    """Azure takes jobs past OpenAI's cutoff, until its own."""
    from providers.azure.lifecycle import load_lifecycle

    return load_lifecycle().job_creation_cutoff


_OPENAI_OPTIONS = frozenset({"--sunset", "--org", "--base64-results"})
EMULATIONS = {
    "openai": Emulation("OpenAI", options=_OPENAI_OPTIONS),
    "together": Emulation(
        "Together AI", together_only=True, options=frozenset({"--serve-fine-tunes"})
    ),
    "azure": Emulation(
        "Azure OpenAI",
        azure_urls=True,
        options=frozenset({"--sunset", "--base64-results"}),
        state_subdir="azure",
        default_sunset=_azure_cutoff,
    ),
    "all": Emulation(
        "OpenAI and Together AI",
        with_together=True,
        options=_OPENAI_OPTIONS | {"--serve-fine-tunes"},
    ),
}


def _parse_date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UserError(
            f"{option} {value!r} is not a date; use YYYY-MM-DD, e.g. 2027-01-07"
        ) from None


def _bind(host: str, port: int, option: str):
    """The listening socket, or one line naming the option to change."""
    from app.sandbox.server import bind_socket

    try:
        return bind_socket(host, port)
    except OSError as exc:
        raise UserError(
            f"cannot listen on {host}:{port}: {exc.strerror}; pass another {option}"
        ) from None


def _say_faults_and_exposure(faults, host: str) -> None:
    """What every emulator prints before serving: its fault plan, and a warning when it
    listens beyond loopback (it accepts the key it prints)."""
    if faults is not None:
        click.echo(f"Faults: {len(faults.rules)} rule(s): {json.dumps(faults.to_dict()['rules'])}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.secho(
            f"warning: listening on {host}: anyone who can reach it can use the sandbox.",
            fg="yellow",
            err=True,
        )


def _load_faults(spec: str):
    """A fault plan from inline JSON or from a JSON file."""
    from app.sandbox.faults import FaultPlan, FaultPlanError

    try:
        if spec.lstrip().startswith("{"):
            try:
                data = json.loads(spec)
            except ValueError as exc:
                raise FaultPlanError(f"the inline fault plan is not valid JSON: {exc}") from None
            return FaultPlan.from_dict(data)
        return FaultPlan.from_file(spec)
    except FaultPlanError as exc:
        raise UserError(
            f"{exc}. Fix the plan or leave out --faults / FTM_SANDBOX_FAULTS."
        ) from None


@click.command("sandbox")
@click.option(
    "--provider",
    "emulated",
    type=click.Choice(list(EMULATIONS)),
    default="openai",
    show_default=True,
    help="Which service to emulate; all: OpenAI's on --port and Together's on "
    "--together-port, from one command.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind. Keep the loopback default: the sandbox accepts any sk- key.",
)
@click.option(
    "--port",
    type=int,
    default=DEFAULT_PORT,
    show_default=True,
    envvar="FTM_SANDBOX_PORT",
    help="TCP port (0: any free port).",
)
@click.option(
    "--together-port",
    type=int,
    default=DEFAULT_PORT + 1,
    show_default=True,
    envvar="FTM_SANDBOX_TOGETHER_PORT",
    help="With --provider all: the Together emulator's TCP port (0: any free port).",
)
@click.option(
    "--seconds-per-step",
    type=float,
    default=0.5,
    show_default=True,
    envvar="FTM_SANDBOX_SECONDS_PER_STEP",
    help="Wall-clock seconds per simulated training step (validation takes 3 steps, queueing 2).",
)
@click.option(
    "--faults",
    "faults_spec",
    metavar="FILE|JSON",
    envvar="FTM_SANDBOX_FAULTS",
    help='Fault plan: a JSON file, or the JSON itself: {"seed": N, "rules": [{"route": '
    '"jobs.create", "kind": "rate_limit", ...}]}.',
)
@click.option(
    "--date",
    "start_date",
    metavar="YYYY-MM-DD",
    help="Start the sandbox clock on this date (UTC midnight) instead of now.",
)
@click.option(
    "--sunset",
    default=None,
    metavar="YYYY-MM-DD|none",
    help="Refuse job creation once the sandbox date is after this day, as the real service "
    "will (default: the service's declared cutoff).",
)
@click.option(
    "--org",
    "org_profile",
    type=click.Choice(["active", "inactive", "new"]),
    default=None,
    help="Emulate the earlier wind-down stages for an organization that is active (recent "
    "fine-tuned inference), inactive (none in the window) or new (never fine-tuned). "
    "Default: one those stages spared.",
)
@click.option("--seed", type=int, help="Seed ids and job seeds, for reproducible sessions.")
@click.option("--ephemeral", is_flag=True, help="Keep nothing: start empty and save no state.")
@click.option(
    "--base64-results",
    is_flag=True,
    help="Serve result CSV files base64-encoded, as the live service has been seen to.",
)
@click.option(
    "--serve-fine-tunes",
    is_flag=True,
    help="Together only: finished fine-tunes answer chats from their training examples, as "
    "if each had its dedicated endpoint up (by default refused, as the service does "
    "without one) — for evaluating and migrating them.",
)
def sandbox(
    emulated: str,
    host: str,
    port: int,
    together_port: int,
    seconds_per_step: float,
    faults_spec: str | None,
    start_date: str | None,
    sunset: str | None,
    org_profile: str | None,
    seed: int | None,
    ephemeral: bool,
    base64_results: bool,
    serve_fine_tunes: bool,
) -> None:
    """Serve a simulated OpenAI API (files, fine-tuning, models, chat) on this machine,
    or with --provider together a simulated Together AI API (files, fine-tunes, models,
    chat, dedicated endpoints), or with --provider all both at once on two ports.

    Everything it serves is simulated and free: jobs run on an accelerated clock and
    fine-tuned models answer from their training examples. State (files, jobs, models)
    is kept under FTM_HOME/sandbox (FTM_HOME/sandbox/together) unless --ephemeral.
    """
    import tempfile

    from app.sandbox.server import build_state, serve_forever
    from app.settings import get_settings

    if seconds_per_step < 0:
        raise UserError(f"--seconds-per-step must not be negative (got {seconds_per_step})")
    start = None
    if start_date:
        start = datetime.combine(_parse_date(start_date, "--date"), datetime.min.time(), UTC)
    emulation = EMULATIONS[emulated]
    given = {
        "--sunset": sunset,
        "--org": org_profile,
        "--base64-results": base64_results,
        "--serve-fine-tunes": serve_fine_tunes,
    }
    foreign = [name for name, value in given.items() if value and name not in emulation.options]
    if foreign:
        raise UserError(
            f"{', '.join(foreign)} do(es) not apply to the {emulation.title} emulator; "
            f"leave it out with --provider {emulated}"
        )
    if emulation.together_only:
        faults = _load_faults(faults_spec) if faults_spec is not None else None
        _serve_together(
            host, port, seconds_per_step, faults, start, seed, ephemeral, serve_fine_tunes
        )
        return
    if sunset is None:
        sunset_date: date | None = emulation.default_sunset()
    else:
        sunset_date = None if sunset.lower() == "none" else _parse_date(sunset, "--sunset")
    faults = None
    if faults_spec is not None:
        faults = _load_faults(faults_spec)

    scratch = None
    if ephemeral:
        scratch = tempfile.TemporaryDirectory(prefix="ftm-sandbox-")
        data_dir = Path(scratch.name)
        state_file = None
    else:
        data_dir = get_settings().home / "sandbox"
        if emulation.state_subdir:
            data_dir = data_dir / emulation.state_subdir
            data_dir.mkdir(parents=True, exist_ok=True)
        state_file = data_dir / "state.json"
    try:
        state = build_state(
            seconds_per_step=seconds_per_step,
            files_dir=data_dir / "files",
            start=start,
            sunset=sunset_date,
            org=org_profile,
            seed=seed,
            state_file=state_file,
            base64_result_files=base64_results,
        )
    except ValueError as exc:
        raise UserError(f"{exc}; or run with --ephemeral") from None
    sock = _bind(host, port, "--port")

    if emulation.azure_urls:
        _serve_azure(sock, state, faults, seconds_per_step, state_file, sunset_date, scratch)
        return
    beside = None
    if emulation.with_together:
        if together_port == port and port != 0:
            sock.close()
            raise UserError(
                f"--port and --together-port are both {port}; give the emulators two ports"
            )
        try:
            beside = _together_setup(
                host,
                together_port,
                seconds_per_step,
                start,
                seed,
                ephemeral,
                serve_fine_tunes,
                port_option="--together-port",
            )
        except UserError:
            sock.close()
            raise
    url = f"http://{host}:{sock.getsockname()[1]}/v1"
    echo = click.echo
    click.secho(f"ftm sandbox: a SIMULATED OpenAI API at {url}", bold=True)
    echo("Nothing here is real or billed. Any API key that starts with sk- is accepted.")
    echo("Point ftm at it with environment variables:")
    echo(f"  export FTM_OPENAI__SANDBOX=true FTM_OPENAI__SANDBOX_URL={url}")
    echo("or in config.toml:")
    echo(f'  [openai]\n  sandbox = true\n  sandbox_url = "{url}"')
    echo(f"Other OpenAI clients: OPENAI_BASE_URL={url} OPENAI_API_KEY=sk-sandbox")
    clock = state.clock.today().isoformat()
    refusal = f"job creation refused after {sunset_date}" if sunset_date else "no service sunset"
    if org_profile:
        refusal += f"; wind-down stages emulated for a {org_profile} organization"
    echo(f"Clock: {clock}, {seconds_per_step:g} s per training step; {refusal}.")
    echo(
        f"State: {state_file} ({len(state.jobs)} jobs)"
        if state_file
        else "State: not kept (--ephemeral)"
    )
    together = None
    if beside is not None:
        t_state, t_sock, t_state_file, t_scratch = beside
        echo("")
        _together_banner(host, t_sock, t_state, t_state_file, seconds_per_step, serve_fine_tunes)
        together = _BackgroundTogether(t_state, t_sock, faults, t_scratch)
    _say_faults_and_exposure(faults, host)
    echo("Press Ctrl-C to stop" + (" both." if together else "."))
    try:
        serve_forever(sock, state, faults)
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C once it has shut down cleanly
        pass
    finally:
        if together is not None:
            together.stop()
        if scratch is not None:
            scratch.cleanup()
    echo(f"Stopped; state saved to {state_file}." if state_file else "Stopped.")
    if beside is not None and beside[2] is not None:
        echo(f"Together AI emulator stopped; state saved to {beside[2]}.")


def _together_setup(
    host: str,
    port: int,
    seconds_per_step: float,
    start: datetime | None,
    seed: int | None,
    ephemeral: bool,
    serve_fine_tunes: bool = False,
    port_option: str = "--port",
):
    """The Together emulator's state (under FTM_HOME/sandbox/together unless ephemeral)
    and its bound socket: (state, socket, state file or None, scratch dir or None)."""
    import tempfile

    from app.sandbox.together.server import build_state
    from app.settings import get_settings

    scratch = None
    if ephemeral:
        scratch = tempfile.TemporaryDirectory(prefix="ftm-together-sandbox-")
        data_dir, state_file = Path(scratch.name), None
    else:
        data_dir = get_settings().home / "sandbox" / "together"
        data_dir.mkdir(parents=True, exist_ok=True)
        state_file = data_dir / "state.json"
    try:
        state = build_state(
            seconds_per_step=seconds_per_step,
            files_dir=data_dir / "files",
            start=start,
            seed=seed,
            state_file=state_file,
            serve_fine_tunes=serve_fine_tunes,
        )
    except ValueError as exc:
        raise UserError(f"{exc}; or run with --ephemeral") from None
    sock = _bind(host, port, port_option)
    return state, sock, state_file, scratch


def _together_banner(
    host: str, sock, state, state_file, seconds_per_step: float, serve_fine_tunes: bool = False
) -> None:
    from providers.together.config import SANDBOX_API_KEY

    url = f"http://{host}:{sock.getsockname()[1]}"
    echo = click.echo
    click.secho(f"ftm sandbox: a SIMULATED Together AI API at {url}/v1", bold=True)
    echo(f"Nothing here is real or billed. It accepts the API key {SANDBOX_API_KEY} only.")
    echo("Point the together SDK at it (it adds /v1 itself):")
    echo(f"  export TOGETHER_BASE_URL={url} TOGETHER_API_KEY={SANDBOX_API_KEY}")
    echo("Point ftm's together provider at it:")
    echo(
        f"  export FTM_PROVIDERS__TOGETHER__SANDBOX=true FTM_PROVIDERS__TOGETHER__SANDBOX_URL={url}"
    )
    echo(f"Clock: {state.clock.today().isoformat()}, {seconds_per_step:g} s per training step.")
    echo(
        "Fine-tunes answer chats from their training examples, as if on a dedicated endpoint."
        if serve_fine_tunes
        else "Fine-tunes: chat refused (dedicated endpoints only); --serve-fine-tunes answers."
    )
    echo(
        f"State: {state_file} ({len(state.jobs)} jobs)"
        if state_file
        else "State: not kept (--ephemeral)"
    )


def _serve_together(
    host: str,
    port: int,
    seconds_per_step: float,
    faults,
    start: datetime | None,
    seed: int | None,
    ephemeral: bool,
    serve_fine_tunes: bool = False,
) -> None:
    """``--provider together``: the Together AI emulator in the foreground."""
    from app.sandbox.server import serve_forever
    from app.sandbox.together.api import create_app

    state, sock, state_file, scratch = _together_setup(
        host, port, seconds_per_step, start, seed, ephemeral, serve_fine_tunes
    )
    _together_banner(host, sock, state, state_file, seconds_per_step, serve_fine_tunes)
    echo = click.echo
    _say_faults_and_exposure(faults, host)
    echo("Press Ctrl-C to stop.")
    try:
        serve_forever(sock, state, faults, app_factory=create_app)  # type: ignore[arg-type]
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C once it has shut down cleanly
        pass
    finally:
        if scratch is not None:
            scratch.cleanup()
    echo(f"Stopped; state saved to {state_file}." if state_file else "Stopped.")


class _BackgroundTogether:
    """The Together emulator served from a thread beside the OpenAI one in the
    foreground (``--provider all``): uvicorn installs no signal handlers off the main
    thread, so Ctrl-C stops the foreground server, which then stops this one."""

    def __init__(self, state, sock, faults, scratch) -> None:
        import threading

        import uvicorn

        from app.sandbox.api import Sandbox
        from app.sandbox.together.api import create_app

        self.state, self._scratch = state, scratch
        config = uvicorn.Config(
            create_app(Sandbox(state, faults)),  # type: ignore[arg-type]
            log_level="info",
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name="ftm-sandbox-together",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self.state.save()
        if self._scratch is not None:
            self._scratch.cleanup()


def _serve_azure(sock, state, faults, seconds_per_step, state_file, sunset_date, scratch) -> None:
    """``--provider azure``: the OpenAI emulator's state served in Azure OpenAI's shape
    (data plane under /openai, the control plane's deployments) in the foreground."""
    from app.sandbox.azure.api import create_app
    from app.sandbox.azure.server import make_sandbox
    from app.sandbox.server import serve_forever
    from providers.azure.config import DEFAULT_API_VERSION

    deployments_file = state_file.with_name("deployments.json") if state_file else None
    sandbox = make_sandbox(state, faults, seconds_per_step, deployments_file)
    host, port = sock.getsockname()[:2]
    url = f"http://{host}:{port}"
    echo = click.echo
    click.secho(f"ftm sandbox: a SIMULATED Azure OpenAI resource at {url}", bold=True)
    echo(
        "Nothing here is real or billed. It takes the api-key "
        f"{sandbox.api_key} and the management token {sandbox.management_token}."
    )
    echo("Point ftm at it with environment variables:")
    echo(f"  export FTM_PROVIDERS__AZURE__SANDBOX=true FTM_PROVIDERS__AZURE__SANDBOX_URL={url}")
    echo("or in config.toml:")
    echo(f'  [providers.azure]\n  sandbox = true\n  sandbox_url = "{url}"')
    echo(
        f"Other clients: AzureOpenAI(azure_endpoint={url!r}, "
        f"api_version={DEFAULT_API_VERSION!r}, api_key={sandbox.api_key!r}); chat through a "
        "deployment: /openai/deployments/NAME/chat/completions"
    )
    refusal = f"job creation refused after {sunset_date}" if sunset_date else "no service sunset"
    echo(
        f"Clock: {state.clock.today().isoformat()}, {seconds_per_step:g} s per training step; "
        f"{refusal}."
    )
    echo(
        f"State: {state_file} ({len(state.jobs)} jobs, {len(sandbox.deployments.records)} "
        "deployments)"
        if state_file
        else "State: not kept (--ephemeral)"
    )
    _say_faults_and_exposure(faults, sock.getsockname()[0])
    echo("Press Ctrl-C to stop.")
    try:
        serve_forever(sock, state, faults, app_factory=lambda _: create_app(sandbox))
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C once it has shut down cleanly
        pass
    finally:
        if scratch is not None:
            scratch.cleanup()
    echo(f"Stopped; state saved to {state_file}." if state_file else "Stopped.")
