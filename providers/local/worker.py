"""The training worker: ``python -m providers.local.worker JOB_DIR``.

Started detached by `LocalProvider.create` (own session and process group, stdout and
stderr into ``JOB_DIR/worker.log``); it outlives the CLI or TUI that started it. It trains
from ``JOB_DIR/config.json``, writes progress to the database and ``status.json`` as it
goes, and always ends with a final status unless it is killed outright (SIGKILL, OOM
killer): then `LocalProvider.refresh` notices the missing process and marks it failed.

SIGTERM / SIGINT, or the job directory's ``stop.request`` file, ask for a clean stop: the
worker saves a checkpoint at the end of the current step and exits with status
``cancelled``.

Multi-process jobs (`providers.local.distributed`) run this module once per rank. Each
rank records its pid (``worker.rank<k>.pid``, so cancel can signal it) and logs to its
own file (rank 0: ``worker.log``; rank k: ``worker.rank<k>.log``); only rank 0 writes
progress. At every step end the ranks agree on stopping (one all-reduce of the stop
flag), so they all stop at the same step, save the checkpoint together and exit: a rank
that stopped alone would leave the others waiting in the next collective.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from providers.local import secret_handoff
from providers.local.distributed import agreed, rank, world_size
from providers.local.jobdir import DATABASE_URL_ENV, JobDir
from providers.local.signals import unblock_stop_signals
from providers.types import Artifact, JobStatus, MetricPoint

log = logging.getLogger("ftm.local.worker")


class StopRequest:
    """Set by the signal handler, or by the job's stop-request file (when ``job`` is
    given); read by the training callback at each step end."""

    def __init__(self, job: JobDir | None = None) -> None:
        self.job = job
        self.requested = False
        self.signal_name: str | None = None

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)
            # Restart system calls the signal interrupts: a rank waiting in a collective
            # (gloo's socket reads) must go on waiting, not fail with EINTR.
            signal.siginterrupt(sig, False)

    def _handle(self, signum, _frame) -> None:
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        log.info("received %s: will checkpoint and stop after the current step", self.signal_name)

    def check(self) -> bool:
        """Whether this process was asked to stop (signal, or the stop-request file)."""
        if not self.requested and self.job is not None and self.job.stop_requested():
            self.requested = True
            self.signal_name = self.signal_name or "stop request"
            log.info("stop requested: will checkpoint and stop after the current step")
        return self.requested

    def agree(self) -> None:
        """Another rank was asked to stop, and this one stops with it."""
        if not self.requested:
            self.requested = True
            self.signal_name = "another rank's stop request"


def make_progress_callback(sink, stop: StopRequest, main_process: bool = True):
    """A TrainerCallback reporting progress to ``sink`` and honouring ``stop``."""
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        def __init__(self) -> None:
            self.t0: float | None = None
            self.first_step = 0
            self.last_time: float | None = None
            self.last_tokens = 0
            self.stopped_by_signal = False

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = self.last_time = time.monotonic()
            self.first_step = state.global_step
            self.last_tokens = state.num_input_tokens_seen

        def on_step_end(self, args, state, control, **kw):
            # Every rank reaches this step end; they decide together (see the module doc).
            if agreed(stop.check(), args.device):
                stop.agree()
                self.stopped_by_signal = True
                control.should_save = True
                control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kw):
            if not main_process or not logs:
                return
            now = time.monotonic()
            tokens = state.num_input_tokens_seen
            tps = None
            if "loss" in logs and self.last_time is not None and now > self.last_time:
                if tokens > self.last_tokens:
                    tps = (tokens - self.last_tokens) / (now - self.last_time)
                self.last_time, self.last_tokens = now, tokens
            done = state.global_step - self.first_step
            eta = None
            if done > 0 and self.t0 is not None:
                eta = (now - self.t0) / done * max(0, state.max_steps - state.global_step)
            point = MetricPoint(
                step=state.global_step,
                train_loss=logs.get("loss"),
                eval_loss=logs.get("eval_loss"),
                learning_rate=logs.get("learning_rate"),
                grad_norm=logs.get("grad_norm"),
                tokens_per_second=tps,
            )
            sink.progress(state.global_step, state.max_steps, point, eta, tokens or None)
            if "eval_loss" in logs:
                self.last_time = time.monotonic()  # evaluation time is not training time
            parts = [f"step {state.global_step}/{state.max_steps}"]
            for key in ("loss", "eval_loss", "learning_rate", "grad_norm"):
                if logs.get(key) is not None:
                    parts.append(f"{key} {logs[key]:.4g}")
            if tps:
                parts.append(f"{tps:.0f} tok/s")
            if eta is not None:
                parts.append(f"eta {eta:.0f}s")
            log.info("  ".join(parts))

        def on_save(self, args, state, control, **kw):
            if not main_process:
                return
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            metrics = next((h for h in reversed(state.log_history) if "eval_loss" in h), None)
            sink.checkpoint(
                state.global_step,
                str(path),
                {"eval_loss": metrics["eval_loss"]} if metrics else None,
            )

    return ProgressCallback()


def hardware_name(device: str) -> str:
    import torch

    from providers.local.hardware import cpu_name

    if device == "cuda":
        return f"cuda:{torch.cuda.get_device_name(0)}"
    return f"cpu:{cpu_name()}"


def peak_memory_bytes(device: str) -> int:
    import torch

    if device == "cuda":
        return int(torch.cuda.max_memory_allocated())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def save_artifacts(
    trainer, config: dict[str, Any], job: JobDir, base_loading: dict[str, Any] | None = None
) -> tuple[str, list[Artifact]]:
    """Save the result where the job directory layout says; returns (model ref, artifacts).

    ``base_loading`` (`training.base_loading`) is written next to an adapter, so that
    evaluation loads its base as it was trained (4-bit for QLoRA, the same dtypes)."""
    hp = config["hp"]
    tokenizer = trainer.processing_class
    if hp["tuning"] == "full":
        trainer.save_model(str(job.model))
        tokenizer.save_pretrained(str(job.model))
        return str(job.model), [Artifact("model", str(job.model), {"format": "safetensors"})]
    # PEFT writes adapter_config.json + adapter_model.safetensors: the layout vLLM's
    # multi-LoRA serving and PeftModel.from_pretrained both load.
    trainer.model.save_pretrained(str(job.adapter), safe_serialization=True)
    tokenizer.save_pretrained(str(job.adapter))
    if base_loading is not None:
        import json

        from providers.local.jobdir import BASE_LOADING_FILE

        (job.adapter / BASE_LOADING_FILE).write_text(json.dumps(base_loading, indent=1))
    artifacts = [
        Artifact(
            "adapter", str(job.adapter), {"base_model": config["base_model"], "format": "peft"}
        )
    ]
    if hp.get("merge"):
        from providers.local.merge import merge_adapter

        merge_adapter(job.adapter, job.merged)
        artifacts.append(Artifact("merged", str(job.merged), {"format": "safetensors"}))
    return str(job.adapter), artifacts


def flops_facts(model_config, config: dict, context: float):
    """The `FlopsFacts` of this run as the estimator counts them, or None for a model whose
    config this shape model cannot read (no FLOPs then: the estimator cannot size it
    either)."""
    from providers.local.flops import FlopsFacts
    from providers.local.memory import method_params
    from providers.local.model_shape import ShapeError, shape_from_config, target_names

    hp = config["hp"]
    try:
        shape = shape_from_config(model_config.to_dict(), config["base_model"], "model config")
        trainable = method_params(
            shape,
            hp["tuning"],
            hp["r"],
            target_names(hp["target_modules"]),
            hp.get("num_virtual_tokens", 20),
        )
    except ShapeError:
        return None
    return FlopsFacts(
        shape=shape,
        method=hp["tuning"],
        trainable_params=trainable,
        gradient_checkpointing=bool(hp["gradient_checkpointing"]),
        context=context,
    )


def throughput_sample(trainer, plan, config, steps) -> dict:
    """The `ThroughputSample` of this attempt from the step timer's log (``steps``):
    one device's tokens/s over the timed training steps, and the facts calibration needs
    to recompute the estimator's FLOPs (see `providers.local.throughput`)."""
    from providers.local.throughput import estimator_context, per_device_throughput

    hp = config["hp"]
    measured = per_device_throughput(steps.seconds, steps.tokens, trainer.args.world_size)
    context = estimator_context(
        steps, packing=bool(hp.get("packing")), max_seq_len=hp["max_seq_len"]
    )
    facts = flops_facts(trainer.model.config, config, context)
    fpt = facts.per_token() if facts is not None else 0.0
    return dict(
        hardware=hardware_name(plan.device),
        method=hp["method"] if hp["method"] == "dpo" else hp["tuning"],
        model_params=plan.model_params,
        seq_len=int(round(context)),
        tokens_per_second=measured.tokens_per_second,
        achieved_flops_per_s=measured.tokens_per_second * fpt,
        peak_memory_bytes=peak_memory_bytes(plan.device),
        world_size=measured.world_size,
        flops_facts=facts.to_dict() if facts is not None else None,
    )


def run(job: JobDir, stop: StopRequest) -> JobStatus:
    """Train the job in ``job``; returns its final status (also written everywhere)."""
    from providers.local.sink import ProgressSink, worker_database_url

    config = job.read_config()
    main = rank() == 0  # rank 0 under accelerate, or alone
    # config.json holds the URL masked: a worker started here finds it in its environment,
    # one on a Ray cluster was handed it there (providers.local.secret_handoff, see `main`).
    sink = ProgressSink(
        job,
        worker_database_url(config) if main else None,
        config["job_uid"],
        attempt=int(config.get("attempt", 1)),
    )
    log.info(
        "worker for job %s started (pid %d, attempt %s)",
        config["job_uid"],
        os.getpid(),
        config.get("attempt", 1),
    )
    # Cancelled before it began: end at once, nothing loaded. Alone only: ranks must
    # agree, and they can only once the model is loaded (the process group is up).
    if world_size() == 1 and stop.check():
        # logged first: once the final status is out, the log is complete
        log.info("cancelled (%s) before training began", stop.signal_name)
        if main:
            sink.finished(JobStatus.CANCELLED, error=None)
        return JobStatus.CANCELLED
    if main:
        sink.started(os.getpid())
    try:
        # The training stack loads after the job is marked running: a cancel during the
        # (long) imports and model load is honoured as soon as they finish.
        from providers.local.training import build_trainer

        callback = make_progress_callback(sink, stop, main)
        from providers.local.throughput import make_step_timer

        timer = make_step_timer(bool(config["hp"].get("packing")))
        trainer, plan = build_trainer(config, [callback, timer])
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # our callback logs a readable line instead
        if world_size() > 1:
            log.info(
                "rank %d of %d on %s (%s), mixed precision %s",
                rank(),
                world_size(),
                trainer.args.device,
                trainer.accelerator.distributed_type.value,
                trainer.accelerator.mixed_precision,
            )
        if main:
            sink.plan(
                f"training {config['hp']['method']} ({config['hp']['tuning']}) on {plan.device}: "
                f"{plan.n_train} train / {plan.n_validation} validation examples, "
                f"{plan.trainable_params:,} of {plan.model_params:,} parameters trained, "
                f"loss on {plan.loss_masking.replace('_', ' ')}; {plan.precision.reason}",
                {
                    "device": plan.device,
                    "bf16": plan.bf16,
                    "precision": plan.precision.to_dict(),
                    "loss_masking": plan.loss_masking,
                    "total_steps": plan.total_steps_estimate,
                    "model_params": plan.model_params,
                    "trainable_params": plan.trainable_params,
                    "quantized_4bit": plan.quantized,
                    "liger_kernel": bool(trainer.args.use_liger_kernel),
                    "world_size": world_size(),
                    # what this process was given (providers.local.devices), as it saw it
                    "devices": config.get("devices") or [],
                    "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                },
            )
        # cancelled while the model was loading: nothing to save
        if agreed(stop.check(), trainer.args.device):
            stop.agree()
            if main:
                sink.finished(JobStatus.CANCELLED, error=None)
            return JobStatus.CANCELLED
        resume = job.last_checkpoint() if config.get("resume") else None
        if resume is not None:
            log.info("resuming from %s", resume.name)
        if resume is not None and main:
            sink.event(
                f"resume-{resume.name}",
                f"resuming from {resume.name}",
                data={"checkpoint": str(resume)},
            )
        t0 = time.monotonic()
        result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        train_seconds = time.monotonic() - t0
        if callback.stopped_by_signal:
            if main:
                sink.finished(
                    JobStatus.CANCELLED,
                    actual={
                        "stopped_at_step": trainer.state.global_step,
                        "signal": stop.signal_name,
                    },
                )
            log.info(
                "stopped on %s at step %d, checkpoint saved",
                stop.signal_name,
                trainer.state.global_step,
            )
            return JobStatus.CANCELLED
        if not main:
            return JobStatus.SUCCEEDED
        from providers.local.training import base_loading

        model_ref, artifacts = save_artifacts(
            trainer, config, job, base_loading(config["hp"]["tuning"], plan.precision)
        )
        sample = throughput_sample(trainer, plan, config, timer.log)
        sink.throughput(sample)
        actual = {
            "train_loss": result.training_loss,
            "train_runtime_s": train_seconds,
            "trained_tokens": int(trainer.state.num_input_tokens_seen),
            "steps": trainer.state.global_step,
            "best_eval_loss": trainer.state.best_metric,
            "tokens_per_second": sample["tokens_per_second"],
            "peak_memory_bytes": sample["peak_memory_bytes"],
            "hardware": sample["hardware"],
        }
        sink.finished(
            JobStatus.SUCCEEDED, fine_tuned_model=model_ref, artifacts=artifacts, actual=actual
        )
        log.info("succeeded: %s", model_ref)
        return JobStatus.SUCCEEDED
    except BaseException as exc:  # every failure must leave a final status behind
        log.error("training failed:\n%s", traceback.format_exc())
        if main:
            message = f"{type(exc).__name__}: {exc}".strip()
            sink.finished(
                JobStatus.FAILED,
                error={"code": "worker_error", "message": message[:2000], "param": None},
            )
        return JobStatus.FAILED


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m providers.local.worker JOB_DIR", file=sys.stderr)
        return 2
    job = JobDir(Path(argv[0]).resolve())
    if rank() == 0 and (handed := secret_handoff.take(job)):
        os.environ[DATABASE_URL_ENV] = handed  # first: the file must not outlive the start
    if rank() > 0:
        # Ranks share the launcher's stdout (worker.log): give each other rank its own
        # file, at the descriptor level so warnings and tracebacks from C code go there too.
        fd = os.open(job.rank_log_path(rank()), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(message)s"
    )
    stop = StopRequest(job)
    stop.install()
    unblock_stop_signals()  # a cancel that came while Python started reaches the handler now
    if world_size() > 1:
        job.write_rank_pid(rank(), os.getpid())  # cancel signals each rank (own sessions)
    status = run(job, stop)
    return 0 if status in (JobStatus.SUCCEEDED, JobStatus.CANCELLED) else 1


if __name__ == "__main__":
    sys.exit(main())
