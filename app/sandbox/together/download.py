"""``GET /v1/finetune/download?ft_id=&checkpoint=adapter|merged|model_output_path
&checkpoint_step=N``: a finished job's weights as Together serves them, a ``.tar.zst``
archive (application/octet-stream, with Range support: the SDK's download manager asks
for two bytes first to learn the size).

Which weights, as the service decides: ``checkpoint_step`` (a saved step) wins over
``checkpoint``; without a step the job must have completed and ``checkpoint`` is
required. A LoRA job has an ``adapter`` and a ``merged`` model (``model_output_path``
gives the merged one, the SDK CLI's default); a full fine-tune has only its model.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from app.sandbox.api import Sandbox
from app.sandbox.errors import ApiError, invalid
from app.sandbox.together import artifacts
from app.sandbox.together.catalog import TINY_MODEL
from app.sandbox.together.records import TogetherJob

CHECKPOINTS = ("merged", "adapter", "model_output_path")


def _step(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise invalid(
            f"checkpoint_step must be an integer, got {text!r}.", param="checkpoint_step"
        ) from None


def choose(job: TogetherJob, checkpoint: str | None, step: int | None) -> tuple[str, int]:
    """(what to pack, at which step) for this request, or the service's refusal."""
    if step is not None and step not in (0, job.total_steps):
        saved = sorted(e.step for e in job.events if e.type == "checkpoint_save")
        if step not in saved:
            raise ApiError(
                404,
                f"Fine-tune job {job.id} has no checkpoint at step {step} (saved: "
                f"{', '.join(map(str, saved)) or 'none yet'}); list them with "
                f"GET /v1/fine-tunes/{job.id}/checkpoints.",
                param="checkpoint_step",
                code="not_found",
            )
        return ("adapter" if job.lora else "full"), step
    if job.status != "completed":
        raise invalid(
            f"Fine-tune job {job.id} is {job.status}: its weights can be downloaded once it "
            "has completed (or name a saved checkpoint_step).",
            param="ft_id",
        )
    if step is None and checkpoint is None:
        raise invalid(
            "checkpoint is required when checkpoint_step is not set: one of "
            f"{', '.join(CHECKPOINTS)}.",
            param="checkpoint",
        )
    if checkpoint is not None and checkpoint not in CHECKPOINTS:
        raise invalid(
            f"checkpoint must be one of {', '.join(CHECKPOINTS)}, got {checkpoint!r}.",
            param="checkpoint",
        )
    if not job.lora:
        if checkpoint in ("adapter", "merged"):
            raise invalid(
                f"Fine-tune job {job.id} is a full fine-tune: it has no {checkpoint} "
                "checkpoint; ask for checkpoint=model_output_path.",
                param="checkpoint",
            )
        return "full", job.total_steps
    return ("adapter" if checkpoint == "adapter" else "merged"), job.total_steps


async def download(sandbox: Sandbox, request: Request) -> Response:
    params = request.query_params
    ft_id = params.get("ft_id")
    if not ft_id:
        raise invalid("Missing required parameter: 'ft_id'.", param="ft_id")
    step = _step(params.get("checkpoint_step"))
    state = sandbox.state
    with state.lock:
        job = state.settled_job(ft_id)
        output, at_step = choose(job, params.get("checkpoint"), step)
        if job.model != TINY_MODEL:
            raise artifacts.unavailable(job.model)
        training_type = dict(job.training_type)
        name = job.model_output_name.split("/")[-1]
    path = await run_in_threadpool(
        state.weights.archive,
        ft_id,
        training_type,
        output,
        at_step,
    )
    intermediate = f"-checkpoint-{at_step}" if at_step != job.total_steps else ""
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=f"{name}{intermediate}{artifacts.ARCHIVE_SUFFIX}",
    )
