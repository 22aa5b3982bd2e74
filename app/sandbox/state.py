"""The emulator's in-memory store and every operation on it, independent of HTTP.

All methods are thread-safe (one re-entrant lock): the HTTP server runs in one thread
while tests inspect ``server.state`` from another. Jobs are settled lazily — each read or
write of a job first applies what the clock says has happened (see lifecycle.py).
"""

from __future__ import annotations

import json
import os
import random
import string
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from app.sandbox import lifecycle, wind_down
from app.sandbox.catalog import BASE_MODEL_CREATED, BASE_MODELS, resolve_base_model
from app.sandbox.clock import SandboxClock
from app.sandbox.errors import ApiError, invalid, no_such_file, no_such_job, no_such_model
from app.sandbox.job_request import JobRequest
from app.sandbox.lifecycle import Timing
from app.sandbox.records import FineTunedModel, Job, StoredFile
from app.sandbox.responder import Memory, Pair
from app.sandbox.wind_down import OrgHistory, WindDown

FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
MAX_PAGE = 100
STATE_VERSION = 1
SAVE_INTERVAL_S = 1.0
_ID_ALPHABET = string.ascii_letters + string.digits


class SandboxState:
    """Files, jobs and models of one emulated organization."""

    def __init__(
        self,
        *,
        clock: SandboxClock,
        timing: Timing,
        files_dir: Path,
        sunset: date | None = None,
        wind_down: WindDown | None = None,
        org_history: OrgHistory | None = None,
        seed: int | None = None,
        organization_id: str = "org-sandbox",
        organization_slug: str = "sandbox",
        state_file: Path | None = None,
    ) -> None:
        self.clock = clock
        self.timing = timing
        self.files_dir = Path(files_dir)
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.sunset = sunset
        """Job creation is refused once the clock's date is after this; None: never."""
        self.wind_down = wind_down
        self.org_history = org_history
        """With ``wind_down``: the history the earlier wind-down stages judge this
        organization by (None: an organization they spared). Creating a job and inference
        on a fine-tuned model add to it."""
        self.organization_id = organization_id
        self.organization_slug = organization_slug
        self.base64_result_files = False
        """Serve result files base64-encoded, as the live service has been seen to; off by
        default (plain CSV). Clients that read results should accept both."""
        self.state_file = state_file
        self.lock = threading.RLock()
        self._rng = random.Random(seed)
        self.files: dict[str, StoredFile] = {}
        self.jobs: dict[str, Job] = {}
        self.models: dict[str, FineTunedModel] = {}
        self._memories: dict[str, Memory] = {}
        self._dirty = False
        self._saved_at = 0.0
        self._used_ids: set[str] = set()
        self.derived: dict[tuple, Any] = {}
        """What lifecycle work derives from an (immutable) file: check results, examples."""
        if state_file is not None and state_file.exists():
            self._load(state_file)

    # ----------------------------------------------------------------- helpers

    def new_id(self, prefix: str, length: int = 24) -> str:
        """A fresh id, never one in use (a seeded generator repeats itself across restarts)."""
        self._dirty = True  # every new record gets an id: a cheap "something changed"
        while True:
            candidate = prefix + "".join(self._rng.choice(_ID_ALPHABET) for _ in range(length))
            if candidate not in self._used_ids:
                self._used_ids.add(candidate)
                return candidate

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the lock for a change, then save the state file (when persisting)."""
        with self.lock:
            yield
            self._save()

    def now(self) -> float:
        return self.clock.now()

    # ------------------------------------------------------------------- files

    def add_file(
        self, filename: str, purpose: str, content: bytes, at: float | None = None
    ) -> StoredFile:
        """Store a file (uploads and result files alike)."""
        with self._writing():
            file_id = self.new_id("file-", 22)
            path = self.files_dir / file_id
            path.write_bytes(content)
            stored = StoredFile(
                file_id, filename, purpose, len(content), self.now() if at is None else at, path
            )
            self.files[file_id] = stored
            return stored

    def upload_file(self, filename: str, purpose: str | None, content: bytes) -> dict[str, Any]:
        if not purpose:
            raise invalid(
                "Missing required parameter: 'purpose'.",
                param="purpose",
                code="missing_required_parameter",
            )
        if purpose not in FILE_PURPOSES:
            raise invalid(
                f"'{purpose}' is not one of {list(FILE_PURPOSES)} - 'purpose'",
                param="purpose",
                code="invalid_value",
            )
        if purpose == "fine-tune" and not filename.endswith(".jsonl"):
            raise invalid("Invalid file format for Fine-Tuning API. Must be .jsonl", param="file")
        return self.add_file(filename, purpose, content).to_api()

    def _file(self, file_id: str) -> StoredFile:
        stored = self.files.get(file_id)
        if stored is None:
            raise no_such_file(file_id)
        return stored

    def retrieve_file(self, file_id: str) -> dict[str, Any]:
        with self.lock:
            return self._file(file_id).to_api()

    def file_content(self, file_id: str) -> bytes:
        with self.lock:
            return self._file(file_id).path.read_bytes()

    def delete_file(self, file_id: str) -> dict[str, Any]:
        with self._writing():
            stored = self._file(file_id)
            del self.files[file_id]
            self.derived = {k: v for k, v in self.derived.items() if k[1] != file_id}
            self._dirty = True
            stored.path.unlink(missing_ok=True)
            return {"id": file_id, "object": "file", "deleted": True}

    def list_files(
        self, *, purpose: str | None, limit: int, order: str, after: str | None
    ) -> dict[str, Any]:
        with self.lock:
            files = [f for f in self.files.values() if purpose is None or f.purpose == purpose]
            if order == "desc":
                files.reverse()
            page, has_more = _page(files, after, limit, lambda f: f.id, "after")
            data = [f.to_api() for f in page]
            return {
                "object": "list",
                "data": data,
                # Observed from the service: null ids on an empty page (the spec says string).
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": has_more,
            }

    # -------------------------------------------------------------------- jobs

    def _settled(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise no_such_job(job_id)
        lifecycle.settle(self, job, self.now())
        return job

    def job_api(self, job: Job) -> dict[str, Any]:
        return job.to_api(lifecycle.estimated_finish(self, job))

    def creation_refused(self) -> ApiError | None:
        """The refusal the service gives once it no longer takes new jobs from this
        organization (the staged wind-down, then the final cutoff), if it applies."""
        return wind_down.refusal(self.wind_down, self.org_history, self.sunset, self.clock.today())

    def create_job(self, request: JobRequest) -> dict[str, Any]:
        with self._writing():
            refusal = self.creation_refused()
            if refusal is not None:
                raise refusal
            reported_model, base = self._fine_tunable(request.model)
            if request.method not in base.methods:
                raise invalid(
                    f"Model {base.id} does not support the {request.method} fine-tuning method.",
                    param="method.type",
                    code="invalid_value",
                )
            for param, file_id in (
                ("training_file", request.training_file),
                ("validation_file", request.validation_file),
            ):
                if file_id is None:
                    continue
                stored = self.files.get(file_id)
                if stored is None:
                    raise invalid(f"invalid {param}: {file_id}", param=param, code="file_not_found")
                if stored.purpose != "fine-tune":
                    raise invalid(
                        f"File {file_id} has purpose '{stored.purpose}'; fine-tuning needs files "
                        "uploaded with purpose 'fine-tune'.",
                        param=param,
                        code="invalid_file_purpose",
                    )
            now = self.now()
            job_id = self.new_id("ftjob-")
            suffix_part = request.suffix or ""
            model_name = f"ft:{base.id}:{self.organization_slug}:{suffix_part}:{self.new_id('', 8)}"
            job = Job(
                id=job_id,
                created_at=now,
                model=reported_model,
                base_model=base.id,
                training_file=request.training_file,
                validation_file=request.validation_file,
                suffix=request.suffix,
                seed=request.seed if request.seed is not None else self._rng.randrange(2**31),
                metadata=request.metadata,
                integrations=request.integrations,
                method=request.method,
                requested=dict(request.hyperparameters),
                model_name=model_name,
                organization_id=self.organization_id,
                status_since=now,
                hyperparameters=dict(request.hyperparameters),
            )
            self.jobs[job_id] = job
            if self.org_history is not None:
                self.org_history.fine_tuned = True
            lifecycle.add_event(self, job, now, f"Created fine-tuning job: {job_id}")
            files = f"Validating training file: {job.training_file}"
            if job.validation_file:
                files += f" and validation file: {job.validation_file}"
            lifecycle.add_event(self, job, now, files)
            return self.job_api(job)

    def _fine_tunable(self, name: str):
        """(the model the job reports, its base snapshot) or a 400 for an unknown model."""
        base = resolve_base_model(name)
        if base is not None:
            return base.id, base
        model = self.models.get(name)
        if model is not None and ":ckpt-step-" not in name:
            return name, resolve_base_model(model.base_model)
        raise invalid(
            f"Model {name} is not available for fine-tuning or does not exist.",
            param="model",
            code="model_not_available",
        )

    def retrieve_job(self, job_id: str) -> dict[str, Any]:
        with self._writing():
            return self.job_api(self._settled(job_id))

    def list_jobs(
        self, *, after: str | None, limit: int, metadata: dict[str, str]
    ) -> dict[str, Any]:
        with self._writing():
            jobs = [
                job
                for job in reversed(self.jobs.values())
                if all((job.metadata or {}).get(k) == v for k, v in metadata.items())
            ]
            page, has_more = _page(jobs, after, limit, lambda j: j.id, "after")
            now = self.now()
            for job in page:
                lifecycle.settle(self, job, now)
            return {"object": "list", "data": [self.job_api(j) for j in page], "has_more": has_more}

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        with self._writing():
            job = self._settled(job_id)
            if job.is_terminal:
                raise invalid(
                    f"Job {job_id} has already {job.status} and cannot be cancelled.",
                    param="fine_tuning_job_id",
                )
            now = self.now()
            job.status = "cancelled"
            job.status_since = now
            job.finished_at = now
            lifecycle.add_event(self, job, now, "Fine-tuning job cancelled")
            return self.job_api(job)

    def pause_job(self, job_id: str) -> dict[str, Any]:
        with self._writing():
            job = self._settled(job_id)
            if job.status not in ("queued", "running"):
                raise invalid(
                    f"Job {job_id} is {job.status}; only a queued or running job can be paused.",
                    param="fine_tuning_job_id",
                )
            now = self.now()
            job.status = "paused"
            job.status_since = now
            lifecycle.add_event(self, job, now, f"Fine-tuning job paused at step {job.steps_done}")
            return self.job_api(job)

    def resume_job(self, job_id: str) -> dict[str, Any]:
        with self._writing():
            job = self._settled(job_id)
            if job.status != "paused":
                raise invalid(
                    f"Job {job_id} is {job.status}; only a paused job can be resumed.",
                    param="fine_tuning_job_id",
                )
            now = self.now()
            job.status = "queued"
            job.status_since = now
            lifecycle.add_event(
                self, job, now, "Fine-tuning job resumed, moving job to queued state"
            )
            return self.job_api(job)

    def list_events(self, job_id: str, *, after: str | None, limit: int) -> dict[str, Any]:
        with self._writing():
            job = self._settled(job_id)
            page, has_more = _page(
                list(reversed(job.events)), after, limit, lambda e: e.id, "after"
            )
            return {"object": "list", "data": [e.to_api() for e in page], "has_more": has_more}

    def list_checkpoints(self, job_id: str, *, after: str | None, limit: int) -> dict[str, Any]:
        with self._writing():
            job = self._settled(job_id)
            page, has_more = _page(
                list(reversed(job.checkpoints)), after, limit, lambda c: c.id, "after"
            )
            data = [c.to_api(job.id) for c in page]
            return {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": has_more,
            }

    def settle_all(self) -> None:
        """Bring every job up to the clock (models appear when their jobs finish)."""
        with self._writing():
            now = self.now()
            for job in self.jobs.values():
                lifecycle.settle(self, job, now)

    # ------------------------------------------------------------------ models

    def register_model(self, model: FineTunedModel) -> None:
        self.models[model.id] = model

    def unregister_model(self, model_id: str) -> None:
        self.models.pop(model_id, None)

    def list_models(self) -> dict[str, Any]:
        self.settle_all()
        with self.lock:
            data = [_base_model_api(m.id, m.shutdown_date) for m in BASE_MODELS]
            data += [
                _base_model_api(alias, m.shutdown_date) for m in BASE_MODELS for alias in m.aliases
            ]
            data += [m.to_api() for m in self.models.values()]
            return {"object": "list", "data": data}

    def retrieve_model(self, model_id: str) -> dict[str, Any]:
        self.settle_all()
        with self.lock:
            base = resolve_base_model(model_id)
            if base is not None:
                return _base_model_api(model_id, base.shutdown_date)
            model = self.models.get(model_id)
            if model is None:
                raise no_such_model(model_id)
            return model.to_api()

    def delete_model(self, model_id: str) -> dict[str, Any]:
        self.settle_all()
        with self._writing():
            if resolve_base_model(model_id) is not None:
                raise ApiError(
                    403,
                    f"You have insufficient permissions to delete the model {model_id}.",
                    param="model",
                    code="model_not_deletable",
                )
            if model_id not in self.models:
                raise no_such_model(model_id)
            del self.models[model_id]
            self._dirty = True
            return {"id": model_id, "object": "model", "deleted": True}

    def chat_model(self, model_id: str) -> tuple[str, Memory | None]:
        """(the base snapshot for tokenizing, the memory a fine-tuned model answers from)."""
        self.settle_all()
        with self.lock:
            base = resolve_base_model(model_id)
            if base is not None:
                return base.id, None
            model = self.models.get(model_id)
            if model is None:
                raise no_such_model(model_id)
            if self.org_history is not None:  # the wind-down looks at fine-tuned inference
                self.org_history.inference_days.add(self.clock.today())
                self._dirty = True
            memory = self._memories.get(model.job_id)
            if memory is None:
                pairs = [Pair(p, r) for p, r in self.jobs[model.job_id].memory]
                memory = self._memories[model.job_id] = Memory(pairs)
            return model.base_model, memory

    # ------------------------------------------------------------- persistence

    def save(self) -> None:
        """Write the state file now (when persisting), e.g. on shutdown."""
        with self.lock:
            self._save(force=True)

    def _save(self, *, force: bool = False) -> None:
        # Debounced: a busy server rewrites the file at most once a second.
        if self.state_file is None or not (self._dirty or force):
            return
        if not force and time.monotonic() - self._saved_at < SAVE_INTERVAL_S:
            return
        self._dirty = False
        self._saved_at = time.monotonic()
        data = {
            "version": STATE_VERSION,
            "clock": self.now(),
            "files": [f.to_state() for f in self.files.values()],
            "jobs": [j.to_state() for j in self.jobs.values()],
            "models": [vars(m) for m in self.models.values()],
            "org_history": self.org_history.to_state() if self.org_history else None,
        }
        tmp = self.state_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.state_file)

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the sandbox state file {path}: {exc}") from None
        if data.get("version") != STATE_VERSION:
            raise ValueError(
                f"{path} was written by another version of the sandbox; move it away to start afresh"
            )
        # Time never runs backwards across a restart: the clock resumes no earlier than
        # where the saved state left it.
        behind = float(data.get("clock", 0.0)) - self.clock.now()
        if behind > 0:
            self.clock.advance(behind)
        self.files = {f["id"]: StoredFile.from_state(f) for f in data["files"]}
        self.jobs = {j["id"]: Job.from_state(j) for j in data["jobs"]}
        self.models = {m["id"]: FineTunedModel(**m) for m in data["models"]}
        if data.get("org_history") and self.org_history is not None:
            self.org_history = OrgHistory.from_state(data["org_history"])
        self._used_ids = {*self.files, *self.jobs, *self.models}
        for job in self.jobs.values():
            self._used_ids.add(job.model_name.rsplit(":", 1)[-1])
            self._used_ids.update(e.id for e in job.events)
            self._used_ids.update(c.id for c in job.checkpoints)


def _base_model_api(model_id: str, shutdown_date: str | None) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "created": BASE_MODEL_CREATED,
        "owned_by": "system",
        "shutdown_date": shutdown_date,
    }


def _page(items: list, after: str | None, limit: int, key, param: str) -> tuple[list, bool]:
    """The page after the item whose id is ``after`` (a cursor), and whether more follow."""
    start = 0
    if after is not None:
        ids = [key(item) for item in items]
        if after not in ids:
            raise invalid(f"No object with id '{after}' to page after.", param=param)
        start = ids.index(after) + 1
    page = items[start : start + limit]
    return page, start + limit < len(items)
