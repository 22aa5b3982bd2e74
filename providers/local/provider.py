"""`LocalProvider`: fine-tuning on this machine with transformers, peft and trl.

Each job is a detached worker process (`providers.local.worker`) with a job directory
(`providers.local.jobdir`). The ``remote_id`` of a local job is the absolute path of its
job directory, so the job can be found even if the jobs directory setting changes later.

Nothing here imports torch: the provider is constructed to list providers, and `create`
runs in the CLI. Training happens in the worker; `complete` loads models lazily
(`providers.local.inference`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from db.storage import Storage, StorageMissing, storage_from_env
from providers.base import Capabilities, Provider, ProviderContext, ProviderOption
from providers.errors import ConfigurationError, ProviderError, SpecRejected
from providers.local import (
    devices,
    distributed,
    hardware,
    memory,
    options,
    ray_cluster,
    secret_handoff,
)
from providers.local.data import DataError, chat_rows, preference_rows
from providers.local.jobdir import DATABASE_URL_ENV, JobDir
from providers.local.methods import supported_methods, unsupported_methods
from providers.local.model_shape import load_local_shape, target_names
from providers.local.precision import Precision, PrecisionError, precision_for_gpus
from providers.local.recipe import recipe_from_local_job, translate_for_local
from providers.local.serving.manager import LocalServers, hardware_options
from providers.local.serving.server_dir import servers_dir
from providers.local.settings import LocalSettings
from providers.local.signals import STOP_SIGNALS, signals_blocked
from providers.pricing import PriceSource, PriceTable
from providers.recipe import RecipeTranslation, TrainingRecipe
from providers.types import (
    BaseModelInfo,
    ChatMessage,
    Completion,
    Deployment,
    HardwareOption,
    JobError,
    JobSpec,
    JobStatus,
    Refresh,
    RemoteJob,
    Upstream,
)


def _default_home() -> Path:
    # Mirrors app.settings (providers/ cannot import app/): FTM_HOME, else the platform dir.
    if os.environ.get("FTM_HOME"):
        return Path(os.environ["FTM_HOME"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("ftm"))


class LocalProvider(Provider):
    """LoRA, QLoRA and full fine-tuning (SFT) and DPO on this machine's GPU or CPU.

    Args:
        jobs_dir: where job directories go (the app passes ``settings.jobs_dir``).
        database_url: the database workers write progress to (the app passes
            ``settings.resolved_database_url``); None: workers write status.json only.
        python: the interpreter that runs workers (``settings.local.python``).
        server_threads: CPU threads of each model server it starts (None: torch's default).
        storage: the storage root (`db.storage`): job directories default to its
            ``jobs/``, and the references the database keeps (``jobs/<uid>/adapter``) are
            resolved against it wherever a model or job is named. None: the environment's.
    """

    name: ClassVar[str] = "local"
    display_name: ClassVar[str] = "Local (PEFT)"
    capabilities: ClassVar[Capabilities] = Capabilities(
        can_resume_from_checkpoint=True,
        supports_dpo=True,
        runs_locally=True,
        batch_completion=True,
        methods=options.METHODS,
        loads_local_weights=True,
    )
    options: ClassVar[tuple[ProviderOption, ...]] = options.OPTIONS

    @classmethod
    def pricing(cls) -> PriceTable:
        """Priced by the hour of the GPU it trains and serves on (ftm's GPU catalog, or
        this machine's electricity), not per token."""
        return PriceTable(
            basis="hardware",
            sources={
                "cost_model": PriceSource(
                    "ftm's cost model: GPU-hours from model size, tokens and MFU, priced "
                    "at the GPU catalog's $/hour",
                    date(2026, 1, 1),
                )
            },
            note="by GPU-hour: training time and always-on serving, at the GPU catalog's "
            "$/hour (owned hardware: its electricity)",
        )

    @classmethod
    def cli_commands(cls) -> tuple[str, ...]:
        """``ftm local`` (merge an adapter into its base model)."""
        return ("app.cli.jobs_local:local",)

    @classmethod
    def contract_harness(cls) -> str:
        return "providers.local.harness:contract_harness"

    def __init__(
        self,
        jobs_dir: str | Path | None = None,
        database_url: str | None = None,
        python: str | None = None,
        server_threads: int | None = None,
        storage: Storage | None = None,
    ) -> None:
        home = _default_home()
        self.server_threads = server_threads
        self.storage = storage or storage_from_env(home)
        self.jobs_dir = (
            Path(jobs_dir)
            if jobs_dir
            else (
                Path(os.environ["FTM_LOCAL__JOBS_DIR"])
                if os.environ.get("FTM_LOCAL__JOBS_DIR")
                else self.storage.area("jobs")
            )
        )
        self.database_url = (
            database_url
            if database_url is not None
            else (os.environ.get("FTM_DATABASE_URL") or f"sqlite:///{home / 'ftm.db'}")
        )
        self.python = python or sys.executable

    settings_model: ClassVar[type[BaseModel]] = LocalSettings
    settings_alias: ClassVar[str | None] = "local"

    @classmethod
    def from_config(cls, config: BaseModel, context: ProviderContext) -> LocalProvider:
        """Job directories under its ``jobs_dir`` (default: ftm's), workers writing
        progress to ftm's database."""
        assert isinstance(config, LocalSettings)
        return cls(
            jobs_dir=config.jobs_dir or context.jobs_dir,
            database_url=context.database_url,
            python=config.python,
            storage=context.storage,
        )

    # -- data -----------------------------------------------------------------------------

    def job_dir_for(self, spec: JobSpec) -> JobDir:
        if not spec.ftm_job_uid:
            raise SpecRejected(
                "the job spec has no ftm_job_uid; launch jobs through ftm", param="ftm_job_uid"
            )
        return JobDir((self.jobs_dir / spec.ftm_job_uid).resolve())

    def validate_spec(self, spec: JobSpec) -> list[str]:
        problems = []
        try:
            hp = options.resolve_hyperparameters(spec)
        except SpecRejected as exc:
            return [exc.message]
        base = Path(spec.base_model).expanduser()
        if not base.exists() and (
            spec.base_model.startswith((".", "/", "~")) or spec.base_model.count("/") != 1
        ):
            problems.append(
                f"base model {spec.base_model!r}: no such directory, and not a hub id (owner/name)"
            )
        elif base.is_dir() and not (base / "config.json").is_file():
            problems.append(f"base model {spec.base_model!r}: the directory has no config.json")
        elif hp["tuning"] in (refused := unsupported_methods(base)):
            problems.append(
                f"method {hp['tuning']} on base model {spec.base_model!r}: {refused[hp['tuning']]}"
            )
        for label, path in (("training", spec.train_path), ("validation", spec.validation_path)):
            if path is None:
                continue
            if not Path(path).is_file():
                problems.append(f"{label} file {path}: not found")
                continue
            try:
                rows = preference_rows(path) if hp["method"] == "dpo" else chat_rows(path)
            except DataError as exc:
                problems.append(str(exc))
                continue
            if not rows:
                problems.append(f"{label} file {path}: no examples")
        on_cluster = bool(hp["cluster"])
        if on_cluster:
            try:
                ray_cluster.check_address(hp["cluster"])
            except SpecRejected as exc:
                problems.append(exc.message)
        if hp["n_gpus"] > 1 and hp["device"] != "cpu" and not on_cluster:
            # Counted as they are assigned: whole GPUs (MIG instances cannot be joined).
            found = len(devices.assignable(hardware.visible_devices(), hp["n_gpus"]))
            if found < hp["n_gpus"]:
                problems.append(
                    f"option n_gpus={hp['n_gpus']}: this machine has {found} CUDA GPU(s) visible"
                    " (MIG instances count for one-GPU jobs only)"
                )
        try:
            job_precision(hp, self._preview_devices(hp))
        except SpecRejected as exc:
            problems.append(exc.message)
        if not problems and not on_cluster:  # a cluster's nodes: `cluster_request`
            try:
                self.memory_check(spec, hp)
            except SpecRejected as exc:
                problems.append(exc.message)
        return problems

    def prepare(self, spec: JobSpec) -> JobSpec:
        """Copy the data into the job directory, so the job does not depend on files that
        may move or change later."""
        problems = self.validate_spec(spec)
        if problems:
            raise SpecRejected("; ".join(problems))
        job = self.job_dir_for(spec)
        job.data.mkdir(parents=True, exist_ok=True)
        train = job.data / "train.jsonl"
        if Path(spec.train_path).resolve() != train:
            shutil.copyfile(spec.train_path, train)
        validation = None
        if spec.validation_path:
            validation = job.data / "validation.jsonl"
            if Path(spec.validation_path).resolve() != validation:
                shutil.copyfile(spec.validation_path, validation)
        return replace(
            spec, train_path=str(train), validation_path=str(validation) if validation else None
        )

    # -- memory ---------------------------------------------------------------------------

    def memory_check(
        self,
        spec: JobSpec,
        hp: dict[str, Any] | None = None,
        assigned: list[hardware.Gpu] | None = None,
    ) -> str | None:
        """Refuse (SpecRejected) a job whose memory estimate exceeds the free memory of any
        device it trains on (``assigned``; None: those `devices.choose` would pick now).

        The estimate is `providers.local.memory`'s, the one `ftm estimate` prints. Returns a
        one-line description of it, or None when the model's shape is unknown (a hub id, a
        config this estimate cannot read): then nothing is refused. The estimate is in the
        number formats the job will use (`job_precision`, which refuses bf16=true on a GPU
        without native bf16).
        """
        hp = hp or options.resolve_hyperparameters(spec)
        if assigned is None:
            assigned = self._preview_devices(hp)
        # Each device holds a full replica's worth (the estimate is per device): the one
        # with the least free memory decides.
        gpus = sorted(assigned, key=lambda g: g.available_bytes)
        precision = job_precision(hp, gpus)
        try:
            shape = load_local_shape(spec.base_model)
            if shape is None:
                return None
            setup = training_setup(hp, device="cuda" if gpus else "cpu", precision=precision)
            est = memory.estimate_training_memory(shape, setup)
        except ValueError:  # not a Llama-style config, or LoRA targets it does not have
            return None
        if gpus:
            tightest = gpus[0]
            available = tightest.available_bytes
            known = "free" if tightest.free_bytes is not None else "total"
            where = f"{tightest.describe()}, {memory.gb(tightest.memory_bytes)} total"
            line = (
                f"estimated {est.describe()} per device against {memory.gb(available)} "
                f"{known} on {where}"
            )
        else:
            # CPU processes of a multi-process dry run each hold a replica in the same RAM.
            processes = hp["n_gpus"]
            ram = hardware.available_ram_bytes()
            available = ram // processes
            if processes > 1:
                line = (
                    f"estimated {est.describe()} per process x {processes} processes against "
                    f"{memory.gb(ram)} of CPU RAM (available)"
                )
            else:
                line = (
                    f"estimated {est.describe()} per device against {memory.gb(ram)} of "
                    "CPU RAM (available)"
                )
        if est.total > available and not hp["skip_memory_check"]:
            fixes = [
                _option_text(hp, change)
                for change in memory.changes_that_fit(shape, setup, available)
            ]
            fit = (
                f"It fits with {'; or '.join(fixes)}."
                if fixes
                else "No single change of method, batch_size, max_seq_len or "
                "gradient_checkpointing makes it fit."
            )
            raise SpecRejected(
                f"this job will not fit: {line}. {fit} To start it anyway: "
                "option skip_memory_check=true.",
                code="insufficient_memory",
            )
        return line

    # -- jobs -----------------------------------------------------------------------------

    def create(self, spec: JobSpec) -> RemoteJob:
        """Write the job's config and start its detached worker.

        Idempotent per ``spec.ftm_job_uid``: a job directory that already has a worker
        (running or finished) is returned as it is, never started twice.
        """
        # Choosing the devices, recording them and starting the worker (whose pid marks
        # the job live) is one step for every concurrent launch.
        with devices.assignment_lock(self.job_dir_for(spec).path.parent):
            existing = self.find_by_uid(spec.ftm_job_uid)
            if existing is not None:
                return existing
            job, hp = self.write_job(spec)
            self._start_worker(job, n_gpus=hp["n_gpus"])
        return RemoteJob(
            remote_id=str(job.path),
            status=JobStatus.QUEUED,
            raw_status="started",
            hyperparameters=_public_hp(hp),
            created_at=datetime.now(UTC),
            base_model=spec.base_model,
            metadata={"ftm_job_uid": spec.ftm_job_uid},
        )

    def write_job(self, spec: JobSpec) -> tuple[JobDir, dict[str, Any]]:
        """Check the spec (options, memory) and write the job directory and its config,
        without starting a worker. Returns the job directory and resolved hyperparameters.

        Raises:
            SpecRejected: bad options, unreadable data, or a job that will not fit.
        """
        job = self.job_dir_for(spec)
        hp = options.resolve_hyperparameters(spec)
        assigned = self._assign_devices(hp, job)
        cluster = None
        if hp["cluster"]:
            address = ray_cluster.resolve(ray_cluster.check_address(hp["cluster"]))
            estimate, wanted = self.cluster_request(spec, hp, address)
            cluster = {"address": address, "resources": asdict(wanted)}
        else:
            estimate = self.memory_check(spec, hp, assigned)
        if spec.train_path != str(job.data / "train.jsonl"):
            spec = self.prepare(spec)
        job.path.mkdir(parents=True, exist_ok=True)
        from db.engine import masked_url  # sqlalchemy: only writing a job needs it

        config = {
            "job_uid": spec.ftm_job_uid,
            "job_dir": str(job.path),
            # Masked: the worker gets the real URL in its environment (`_start_worker`).
            "db_url": masked_url(self.database_url) if self.database_url else None,
            # The worker names its files in the database relative to the same root.
            "storage_root": self.storage.root,
            "storage_cache": str(self.storage.cache_dir) if self.storage.cache_dir else None,
            "host": socket.gethostname(),
            "base_model": str(Path(spec.base_model).expanduser().resolve())
            if Path(spec.base_model).expanduser().exists()
            else spec.base_model,
            "train_path": spec.train_path,
            "validation_path": spec.validation_path,
            "output_dir": str(job.checkpoints),
            "hp": hp,
            "memory_estimate": estimate,
            "devices": [g.uuid for g in assigned],
            "spec": options.spec_snapshot(spec),
            "attempt": 1,
            "resume": False,
            "created_at": datetime.now(UTC).isoformat(),
        }
        if cluster:
            config["ray"] = cluster
        job.write_config(config)
        return job, hp

    def cluster_request(
        self, spec: JobSpec, hp: dict[str, Any], address: str
    ) -> tuple[str | None, ray_cluster.Resources]:
        """What a job for a Ray cluster (option ``cluster``) asks its scheduler for, from
        the memory estimate, refused (SpecRejected) when no node of the cluster can hold
        it. Returns the estimate's description (None: the model's shape is unknown) and
        the request.

        A GPU job asks for its GPUs by count: Ray does not schedule by GPU memory, so the
        per-GPU estimate is only recorded. A CPU job asks for host memory: the estimate
        per process (``n_gpus`` processes in a CPU dry run of multi-GPU training).
        ``address``: the cluster's Jobs API (`ray_cluster.resolve`).
        """
        n_gpus = 0 if hp["device"] == "cpu" else int(hp["n_gpus"])
        processes = int(hp["n_gpus"])
        line, needed = None, None
        try:
            shape = load_local_shape(spec.base_model)
            if shape is not None:
                # on the cluster's GPU the worker picks its precision; on a CPU, fp32
                precision = None if n_gpus else job_precision(hp, [])
                setup = training_setup(hp, device="cuda" if n_gpus else "cpu", precision=precision)
                est = memory.estimate_training_memory(shape, setup)
                line = f"estimated {est.describe()} per device on the Ray cluster"
                needed = None if n_gpus else est.total * processes
        except ValueError:  # not a Llama-style config: nothing to estimate from
            pass
        threads = int(hp["torch_threads"]) or 1
        wanted = ray_cluster.Resources(
            num_cpus=float(threads if n_gpus else threads * processes),
            num_gpus=n_gpus,
            memory_bytes=None if hp["skip_memory_check"] else needed,
        )
        if not hp["skip_memory_check"]:
            ray_cluster.check_fits(address, wanted)
        return line, wanted

    def _candidates(self, hp: dict[str, Any]) -> list[hardware.Gpu]:
        # On a cluster, Ray assigns the devices (none of this machine's).
        if hp["device"] == "cpu" or hp.get("cluster"):
            return []
        return hardware.visible_devices()

    def _preview_devices(self, hp: dict[str, Any]) -> list[hardware.Gpu]:
        candidates = self._candidates(hp)
        if not candidates:
            return []
        return devices.preview(candidates, devices.holders(self.jobs_dir), hp["n_gpus"])

    def _assign_devices(
        self, hp: dict[str, Any], job: JobDir, prefer: list[str] | None = None
    ) -> list[hardware.Gpu]:
        """The job's own devices (none on the CPU, or when no GPU is known); call under
        `devices.assignment_lock`. Raises SpecRejected when too few are free."""
        candidates = self._candidates(hp)
        if not candidates:
            return []
        held = devices.holders(job.path.parent, besides=job.path)
        return devices.choose(candidates, held, hp["n_gpus"], prefer=prefer or ())

    def worker_command(self, job: JobDir, n_gpus: int = 1, python: str | None = None) -> list[str]:
        """The worker's command line: plain Python, or `accelerate launch` of one process
        per GPU for n_gpus > 1 (per CPU process with device=cpu; see
        `providers.local.distributed`). ``python``: the interpreter (default ``self.python``)."""
        python = python or self.python
        if n_gpus > 1:
            return distributed.launch_command(python, job, n_gpus)
        return [python, "-m", "providers.local.worker", str(job.path)]

    def _start_worker(self, job: JobDir, n_gpus: int = 1) -> int | None:
        """Start the job's worker: a detached process here (returns its pid), or a Ray
        job on the cluster its config names (returns None)."""
        job.status_path.unlink(missing_ok=True)
        job.write_status(status="queued", updated_at=datetime.now(UTC).isoformat())
        job.clear_stop_request()  # a resumed job's earlier cancel is done with
        job.clear_rank_pids()
        config = job.read_config()
        cpu = config["hp"].get("device") == "cpu"
        if config.get("ray"):
            self._submit_to_cluster(job, config, n_gpus)
            return None
        if n_gpus > 1:
            distributed.write_accelerate_config(job, n_gpus, cpu)
        env = dict(os.environ)
        # The worker must import this checkout's packages whatever its working directory.
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        env.update(devices.worker_env(config.get("devices") or [], cpu=cpu))
        if self.database_url:  # never in config.json: see `DATABASE_URL_ENV`
            env[DATABASE_URL_ENV] = self.database_url
        else:
            env.pop(DATABASE_URL_ENV, None)
        # A single worker starts with SIGTERM/SIGINT blocked (the mask survives fork and
        # exec) and unblocks them once its handler is in place: a cancel sent while Python
        # is still starting waits for the handler instead of killing the worker outright.
        # (`accelerate launch` keeps the default: its launcher must stay killable.)
        blocked = STOP_SIGNALS if n_gpus <= 1 else ()
        with open(job.log_path, "ab") as log, signals_blocked(blocked):
            proc = subprocess.Popen(
                self.worker_command(job, n_gpus),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(job.path),
                env=env,
                start_new_session=True,
            )
        job.write_pid(proc.pid)
        return proc.pid

    def _submit_to_cluster(self, job: JobDir, config: dict[str, Any], n_gpus: int) -> None:
        """Submit this attempt's worker as a Ray job (`providers.local.ray_cluster`)."""
        ray = config["ray"]
        cpu = config["hp"].get("device") == "cpu"
        if n_gpus > 1:
            distributed.write_accelerate_config(job, n_gpus, cpu)
        sub_id = ray_cluster.submission_id(config["job_uid"], int(config.get("attempt", 1)))
        # Recorded first: from now on the job's liveness is that Ray job's status.
        ray["submission_id"] = sub_id
        job.write_config(config)
        if self.database_url:
            secret_handoff.hand_over(job, self.database_url)
        env = {"TOKENIZERS_PARALLELISM": "false"}
        if cpu:
            env["CUDA_VISIBLE_DEVICES"] = ""
        ray_cluster.submit(
            job,
            ray["address"],
            sub_id,
            self.worker_command(job, n_gpus, python=ray_cluster.CLUSTER_PYTHON),
            ray_cluster.Resources(**ray["resources"]),
            env,
        )

    def _worker_alive(self, job: JobDir) -> bool:
        """Whether the job's worker may still run: its process here, or its Ray job
        pending or running on the cluster."""
        ray = job.read_config().get("ray")
        if ray and ray.get("submission_id"):
            return ray_cluster.state(ray["address"], ray["submission_id"]).alive
        return job.worker_alive()

    def _where_it_ended(self, job: JobDir) -> str:
        """For a worker gone without a final status: what its Ray job says ("" here)."""
        ray = job.read_config().get("ray")
        if not (ray and ray.get("submission_id")):
            return ""
        got = ray_cluster.state(ray["address"], ray["submission_id"])
        return f" on the Ray cluster (Ray job {ray['submission_id']} {got.status}: {got.message})"

    def find_by_uid(self, ftm_job_uid: str) -> RemoteJob | None:
        job = JobDir((self.jobs_dir / ftm_job_uid).resolve())
        if not job.config_path.is_file():
            return None
        started = job.read_pid() is not None or bool(
            (job.read_config().get("ray") or {}).get("submission_id")
        )
        if not started:
            return None
        return self.refresh(str(job.path)).job

    def local_model(self, model: str) -> str:
        """``model`` as a local path when it is a storage reference (``jobs/<uid>/...``,
        as the database keeps a job's adapter or checkpoint); else unchanged."""
        try:
            return self.storage.resolve(model) or model
        except StorageMissing as exc:
            raise ProviderError(str(exc), code="not_found") from None

    def _job(self, remote_id: str) -> JobDir:
        job = JobDir(Path(self.local_model(remote_id)))
        if not job.config_path.is_file():
            raise ProviderError(
                f"local job {remote_id}: no such job directory (config.json missing)",
                code="not_found",
            )
        return job

    def refresh(self, remote_id: str, events_cursor: str | None = None) -> Refresh:
        """The job's status from its status file and its worker's liveness.

        The worker writes events, metrics and checkpoints to the database itself, so the
        lists in the returned `Refresh` stay empty. A worker gone without a final status
        is reported FAILED with the last lines of its log (and status.json says so from
        then on, so the verdict is stable).
        """
        job = self._job(remote_id)
        config = job.read_config()
        st = job.read_status() or {}
        raw = st.get("status", "queued")
        status = JobStatus(raw) if raw in JobStatus._value2member_map_ else JobStatus.RUNNING
        error = None
        # A job in a shared storage root may run on a teammate's machine: only the machine
        # that runs the worker can tell whether it died; elsewhere status.json is the truth.
        # A Ray job's liveness is the cluster's word, which any machine can ask.
        runs_here = bool(config.get("ray")) or (
            config.get("host", socket.gethostname()) == socket.gethostname()
        )
        if runs_here and not status.is_terminal and not self._worker_alive(job):
            # Re-read: the worker may have written its final status just before exiting.
            st = job.read_status() or {}
            raw = st.get("status", raw)
            status = JobStatus(raw) if raw in JobStatus._value2member_map_ else status
            if not status.is_terminal:
                secret_handoff.discard(job)  # no worker will read it now
            if not status.is_terminal and job.stop_requested() and not st.get("pid"):
                # Cancelled before its worker started (a Ray job stopped while pending).
                st.update(status="cancelled", finished_at=datetime.now(UTC).isoformat())
                job.write_status(**st)
                status = JobStatus.CANCELLED
                self._record_end(job, JobStatus.CANCELLED, None)
            if not status.is_terminal:
                tail = job.log_tail(15)
                # A multi-process job may die of one rank: quote each other rank's end too.
                for number, _ in job.other_rank_logs():
                    tail += f"\n-- rank {number} ({job.rank_log_path(number).name}):\n"
                    tail += job.log_tail(5, rank=number)
                message = (
                    "the training worker died without a final status (killed, out of "
                    f"memory or machine restart){self._where_it_ended(job)}; last log "
                    "lines:\n" + tail
                )
                st.update(
                    status="failed",
                    finished_at=datetime.now(UTC).isoformat(),
                    error={"code": "worker_died", "message": message, "param": None},
                )
                job.write_status(**st)
                status = JobStatus.FAILED
                self._record_end(
                    job,
                    JobStatus.FAILED,
                    {"code": "worker_died", "message": message, "param": None},
                )
        if st.get("error"):
            e = st["error"]
            error = JobError(e.get("code"), e.get("message", ""), e.get("param"))
        eta = st.get("eta_s")
        remote = RemoteJob(
            remote_id=str(job.path),
            status=status,
            raw_status=raw,
            fine_tuned_model=st.get("fine_tuned_model"),
            hyperparameters=_public_hp(config["hp"]),
            trained_tokens=st.get("trained_tokens"),
            error=error,
            step=st.get("step"),
            total_steps=st.get("total_steps"),
            estimated_finish=(
                datetime.now(UTC) + timedelta(seconds=eta)
                if eta and not status.is_terminal
                else None
            ),
            created_at=_parse_ts(config.get("created_at")),
            finished_at=_parse_ts(st.get("finished_at")) if status.is_terminal else None,
            metadata={"ftm_job_uid": config["job_uid"]},
            base_model=config["base_model"],
        )
        return Refresh(job=remote, events_cursor=events_cursor)

    def _record_end(self, job: JobDir, status: JobStatus, error: dict[str, Any] | None) -> None:
        """Record an end the worker could not (idempotent; the poller may as well)."""
        config = job.read_config()
        if not config.get("db_url") or not self.database_url:
            return
        try:
            from providers.local.sink import ProgressSink

            sink = ProgressSink(
                job, self.database_url, config["job_uid"], attempt=int(config.get("attempt", 1))
            )
            sink.finished(status, error=error)
        except Exception:  # the status file already says failed; the poller will catch up
            pass

    def cancel(self, remote_id: str, wait_s: float = 0.0) -> RemoteJob:
        """Ask the worker to checkpoint and stop: the stop-request file every rank polls
        at each step end, and SIGTERM to each process that trains (a single worker's
        process group, or each rank of a multi-process job, never the launcher: torch's
        agent would SIGKILL the ranks 30 s later, mid-checkpoint maybe).

        Returns at once (or after up to ``wait_s`` seconds for the worker to finish);
        the job ends ``cancelled`` when the worker has saved its checkpoint.
        """
        job = self._job(remote_id)
        current = self.refresh(remote_id).job
        if current.status.is_terminal:
            raise ProviderError(
                f"local job {remote_id} already ended ({current.status.value})",
                code="already_ended",
            )
        import signal
        import time

        config = job.read_config()
        if (
            not config.get("ray")
            and config.get("host", socket.gethostname()) != socket.gethostname()
        ):
            # Trained on a teammate's machine: its worker reads the stop request at its
            # next step end, from the shared job directory; no signal reaches it from here.
            job.request_stop()
            return self.refresh(remote_id).job
        if not self._worker_alive(job):
            return self.refresh(remote_id).job
        job.request_stop()
        ray = job.read_config().get("ray")
        if ray:
            # A running worker reads the stop request at its next step end (Ray's own stop
            # signal could come before the worker's handler is in place); one still
            # pending is stopped by Ray and never starts.
            if ray_cluster.state(ray["address"], ray["submission_id"]).status == "PENDING":
                ray_cluster.stop(ray["address"], ray["submission_id"])
        elif job.read_config()["hp"].get("n_gpus", 1) > 1:
            job.signal_ranks(signal.SIGTERM)  # ranks not started yet will see the file
        else:
            job.signal_worker(signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            now = self.refresh(remote_id).job
            if now.status.is_terminal:
                return now
            time.sleep(0.2)
        return self.refresh(remote_id).job

    def resume_from_checkpoint(self, remote_id: str) -> RemoteJob:
        """Restart a failed or cancelled job's worker from its last checkpoint
        (optimizer state included); it then runs to completion. `ftm jobs resume ID`
        calls this.

        Raises:
            ProviderError: the job is neither failed nor cancelled, its worker still
                runs, or it has no checkpoint to resume from.
        """
        job = self._job(remote_id)
        current = self.refresh(remote_id).job
        if not current.status.can_resume_from:
            raise ProviderError(
                f"local job {remote_id} is {current.status.value}; only a failed or cancelled "
                "job can be resumed from its checkpoint",
                code="not_resumable",
            )
        if self._worker_alive(job):
            raise ProviderError(
                f"local job {remote_id}: its worker is still running", code="not_resumable"
            )
        ckpt = job.last_checkpoint()
        if ckpt is None:
            raise ProviderError(
                f"local job {remote_id} has no checkpoint to resume from; start it again instead",
                code="no_checkpoint",
            )
        with devices.assignment_lock(job.path.parent):
            config = job.read_config()
            try:  # its own devices when still free, else others
                assigned = self._assign_devices(
                    config["hp"], job, prefer=config.get("devices") or []
                )
            except SpecRejected as exc:
                raise ProviderError(
                    f"local job {remote_id} cannot resume now: {exc.message}", code=exc.code
                ) from None
            config["devices"] = [g.uuid for g in assigned]
            config["attempt"] = int(config.get("attempt", 1)) + 1
            config["resume"] = True
            config["host"] = socket.gethostname()
            job.write_config(config)
            self._reopen_in_db(config)
            self._start_worker(job, n_gpus=config["hp"].get("n_gpus", 1))
        return RemoteJob(
            remote_id=str(job.path),
            status=JobStatus.QUEUED,
            raw_status="resuming",
            hyperparameters=_public_hp(config["hp"]),
            metadata={"ftm_job_uid": config["job_uid"]},
            base_model=config["base_model"],
        )

    def resume(self, remote_id: str) -> RemoteJob:
        """Local jobs cannot pause; resuming means continuing a failed or cancelled job
        from its last checkpoint (`resume_from_checkpoint`)."""
        return self.resume_from_checkpoint(remote_id)

    def _reopen_in_db(self, config: dict[str, Any]) -> None:
        """Move the job row from failed or cancelled back to queued through the state
        machine's one resume move (`db.repository.reopen_for_resume`)."""
        if not config.get("db_url") or not self.database_url:
            return
        from sqlalchemy import select

        from db.engine import make_engine, write_session
        from db.models import Job
        from db.repository import reopen_for_resume

        with write_session(make_engine(self.database_url)) as s:
            row = s.scalars(select(Job).where(Job.uid == config["job_uid"])).first()
            if row is None or not JobStatus(row.status).can_resume_from:
                return  # not tracked, or the row has not caught up with the failure yet
            reopen_for_resume(
                s,
                row,
                f"resuming from the last checkpoint (attempt {config['attempt']})",
                key=f"resume-{config['attempt']}",
            )

    # -- models ---------------------------------------------------------------------------

    def list_base_models(self) -> list[BaseModelInfo]:
        """Any causal LM works; this lists the local model directories ftm knows of
        (``<home>/models``: the demo's tiny model, merged models)."""
        models_dir = self.jobs_dir.parent / "models"
        found = []
        if models_dir.is_dir():
            for cfg in sorted(models_dir.glob("*/config.json")):
                found.append(
                    BaseModelInfo(
                        id=str(cfg.parent),
                        methods=supported_methods(cfg.parent, self.capabilities.methods),
                        notes="local directory",
                    )
                )
        return found

    def complete(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> Completion:
        """One chat completion from a base model, adapter or merged model directory
        (greedy by default); loaded models stay cached in this process."""
        from providers.local.inference import complete_batch

        return complete_batch(
            self.local_model(model), [messages], max_tokens=max_tokens, temperature=temperature
        )[0]

    def complete_batch(
        self,
        model: str,
        conversations: Sequence[Sequence[ChatMessage]],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        batch_size: int = 16,
    ) -> list[Completion]:
        """Completions for many conversations, generated in padded batches."""
        from providers.local.inference import complete_batch

        return complete_batch(
            self.local_model(model),
            conversations,
            max_tokens=max_tokens,
            temperature=temperature,
            batch_size=batch_size,
        )

    def close(self) -> None:
        from providers.local import inference_cache

        inference_cache.clear()

    # -- serving: a local OpenAI-compatible server per base model (providers.local.serving)

    def servers(self) -> LocalServers:
        """The model servers under ``<home>/servers`` (beside the jobs directory)."""
        return LocalServers(
            servers_dir(self.jobs_dir),
            self.python,
            torch_threads=self.server_threads,
            jobs_dir=self.jobs_dir,
        )

    def deployment_kind(self, model: str) -> str:
        return "local"

    def deployment_hardware(self, model: str) -> list[HardwareOption]:
        """This machine's CPU and GPUs (``cpu``, ``cuda:N``), unpriced."""
        return hardware_options()

    def deploy(
        self,
        model: str,
        *,
        wait: bool = True,
        hardware: str | None = None,
        min_replicas: int = 1,
        max_replicas: int = 1,
    ) -> Deployment:
        """Serve ``model`` (an adapter, merged or base model) from the local server of its
        base model, started if none runs (vLLM where CUDA and vllm are present, else
        transformers), on ``hardware`` (``cpu`` or ``cuda:N``; default the first GPU,
        else the CPU). One process, so replicas are not offered."""
        if min_replicas != 1 or max_replicas != 1:
            raise ProviderError(
                "a local server runs one replica; deploy without --min/--max-replicas",
                code="invalid_replicas",
            )
        return self.servers().deploy(self.local_model(model), hardware, wait)

    def deployment_status(self, deployment: Deployment) -> Deployment:
        return self.servers().status(deployment)

    def stop_deployment(self, deployment: Deployment) -> Deployment:
        return self.servers().stop(deployment)

    def delete_deployment(self, deployment: Deployment) -> None:
        self.servers().delete(deployment)

    def upstream(self, model: str, deployment: Deployment | None = None) -> Upstream | None:
        """The local server's OpenAI-compatible endpoint, the model called by its served
        name; None without a deployment (the gateway then answers through `complete`)."""
        if deployment is None or not deployment.endpoint_url:
            return None
        return Upstream(deployment.endpoint_url, deployment.name, {})

    # -- migration: training recipes ----------------------------------------------------

    @classmethod
    def recipe_from_job(
        cls, method: str, hyperparameters: Mapping[str, Any] | None, spec: Mapping[str, Any] | None
    ) -> TrainingRecipe:
        """The resolved absolute learning rate, epochs, batch size and LoRA settings."""
        return recipe_from_local_job(method, hyperparameters, spec)

    @classmethod
    def translate_recipe(cls, recipe: TrainingRecipe) -> RecipeTranslation:
        """Every knob as a local option (see providers.local.recipe)."""
        return translate_for_local(recipe)


def _public_hp(hp: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "method",
        "tuning",
        "r",
        "alpha",
        "dropout",
        "target_modules",
        "learning_rate",
        "epochs",
        "batch_size",
        "grad_accum",
        "warmup_ratio",
        "scheduler",
        "max_seq_len",
        "gradient_checkpointing",
        "seed",
        "packing",
        "early_stopping_patience",
        "n_gpus",
    )
    return {k: hp[k] for k in keep if k in hp}


def _parse_ts(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


__all__ = ["ConfigurationError", "LocalProvider"]


def job_precision(hp: dict[str, Any], gpus: Sequence[hardware.Gpu]) -> Precision:
    """The precision a job with hyperparameters ``hp`` trains in on ``gpus`` (the devices
    it trains on, from the hardware seam; empty: the CPU): the worker decides the same
    from its own device.

    Raises:
        SpecRejected: bf16=true where a GPU has no native bf16 (param ``bf16``).
    """
    try:
        return precision_for_gpus(str(hp["bf16"]), gpus)
    except PrecisionError as exc:
        raise SpecRejected(f"option {exc}", param="bf16") from None


def training_setup(
    hp: dict[str, Any], *, device: str, precision: Precision | None = None
) -> memory.TrainingSetup:
    """The memory estimator's setup for resolved hyperparameters ``hp`` on ``device``, in
    ``precision`` (None: what ``bf16=auto`` picks there on a bf16 GPU)."""
    return memory.TrainingSetup(
        method=hp["tuning"],
        seq_len=hp["max_seq_len"],
        micro_batch=hp["batch_size"],
        rank=hp["r"],
        targets=target_names(hp["target_modules"]),
        gradient_checkpointing=bool(hp["gradient_checkpointing"]),
        device=device,
        precision=precision,
        dpo=hp["method"] == "dpo",
        world_size=int(hp.get("n_gpus", 1)),
        num_virtual_tokens=int(hp.get("num_virtual_tokens", 20)),
    )


def _option_text(hp: dict[str, Any], change: dict[str, Any]) -> str:
    """One change of the memory setup as the job spec says it (method or option)."""
    ((field, value),) = change.items()
    if field == "method":
        return f"option dpo_tuning={value}" if hp["method"] == "dpo" else f"method {value}"
    name = {"micro_batch": "batch_size", "seq_len": "max_seq_len"}.get(field, field)
    return f"option {name}={str(value).lower() if isinstance(value, bool) else value}"
