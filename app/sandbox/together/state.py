"""The Together emulator's store and every operation on it, independent of HTTP.

Thread-safe (one re-entrant lock), jobs settled lazily on each read (lifecycle.py), and
optionally persisted to a state file, debounced, like the OpenAI emulator's state.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from app.sandbox.clock import SandboxClock
from app.sandbox.errors import ApiError, invalid
from app.sandbox.lifecycle import Timing
from app.sandbox.metrics import step_metrics
from app.sandbox.records import StoredFile
from app.sandbox.responder import Memory, Pair
from app.sandbox.together import catalog, endpoints, lifecycle, rates, serving
from app.sandbox.together.artifacts import WeightsStore
from app.sandbox.together.catalog import TOKENIZER_PROXY
from app.sandbox.together.endpoints import Endpoint
from app.sandbox.together.hardware import HARDWARE, hardware_api
from app.sandbox.together.job_request import TogetherJobRequest
from app.sandbox.together.records import TogetherJob, file_api, iso
from app.sandbox.training_data import load_examples

FILE_PURPOSES = ("fine-tune", "eval", "eval-sample", "eval-output", "eval-summary", "batch-api")
FILE_TYPES = ("jsonl", "csv", "parquet")
STATE_KIND = "together"
STATE_VERSION = 1
SAVE_INTERVAL_S = 1.0
DEFAULT_CREDIT_LIMIT_DOLLARS = 100.0


def no_such_file(file_id: str) -> ApiError:
    return ApiError(404, f"File {file_id} not found", param="id", code="file_not_found")


def no_such_job(job_id: str) -> ApiError:
    return ApiError(404, f"Fine-tune job {job_id} not found", param="id", code="not_found")


class TogetherState:
    """Files and fine-tuning jobs of one emulated Together account."""

    def __init__(
        self,
        *,
        clock: SandboxClock,
        timing: Timing,
        files_dir: Path,
        seed: int | None = None,
        state_file: Path | None = None,
        credit_limit_dollars: float = DEFAULT_CREDIT_LIMIT_DOLLARS,
        weights_dir: Path | None = None,
        serve_fine_tunes: bool = False,
    ) -> None:
        self.clock = clock
        self.timing = timing
        self.files_dir = Path(files_dir)
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.state_file = state_file
        self.credit_limit_dollars = credit_limit_dollars
        """``estimate-price`` answers ``allowed_to_proceed: false`` above this."""
        self.lock = threading.RLock()
        self.weights = WeightsStore(weights_dir or self.files_dir.parent / "weights")
        """Real weights served by ``GET /finetune/download`` (built and cached there)."""
        self.serve_fine_tunes = serve_fine_tunes
        """Answer chats with finished fine-tunes as if each had a running dedicated
        endpoint (see app/sandbox/together/serving.py); off: refused, as the service does
        without one."""
        self._rng = random.Random(seed)
        self.files: dict[str, StoredFile] = {}
        self.jobs: dict[str, TogetherJob] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.deleted_endpoints: dict[str, Endpoint] = {}
        """Deleted endpoints, stopped at deletion: gone from the API, kept for the bill."""
        self.pending_uploads: dict[str, tuple[str, str, str]] = {}
        """file id -> (file name, purpose, signature) between the SDK's upload request and
        its PUT to the presigned URL."""
        self._memories: dict[str, Memory] = {}
        """fine-tune output name -> what it answers from when served (built once)."""
        self._dirty = False
        self._saved_at = 0.0
        if state_file is not None and state_file.exists():
            self._load(state_file)

    def now(self) -> float:
        return self.clock.now()

    def _new_id(self, prefix: str) -> str:
        """A fresh id, never one in use (a seeded generator repeats itself across
        restarts)."""
        self._dirty = True
        while True:
            candidate = prefix + str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            if candidate not in self.files and candidate not in self.jobs:
                if candidate not in self.pending_uploads and candidate not in self.endpoints:
                    if candidate not in self.deleted_endpoints:
                        return candidate

    # ------------------------------------------------------------------- files

    def _check_upload(self, filename: str, purpose: str | None, file_type: str | None) -> str:
        if purpose not in FILE_PURPOSES:
            raise invalid(
                f"purpose must be one of {', '.join(FILE_PURPOSES)}, got {purpose!r}.",
                param="purpose",
            )
        kind = file_type or filename.rsplit(".", 1)[-1].lower()
        if kind not in FILE_TYPES:
            raise invalid(
                f"file_type must be one of {', '.join(FILE_TYPES)}, got {kind!r}.",
                param="file_type",
            )
        return purpose

    def upload_file(
        self, filename: str, purpose: str | None, content: bytes, file_type: str | None = None
    ) -> dict[str, Any]:
        """``POST /files/upload``: the spec's one-request upload."""
        purpose = self._check_upload(filename, purpose, file_type)
        with self.lock:
            return self._store(self._new_id("file-"), filename, purpose, content)

    def start_upload(
        self, filename: str, purpose: str | None, file_type: str | None
    ) -> tuple[str, str]:
        """``POST /files`` as the SDK sends it: reserve an id and the signature of the
        presigned URL the bytes are PUT to (it carries no bearer key, as a bucket's
        presigned URL does not)."""
        purpose = self._check_upload(filename, purpose, file_type)
        with self.lock:
            file_id = self._new_id("file-")
            signature = f"{self._rng.getrandbits(128):032x}"
            self.pending_uploads[file_id] = (filename, purpose, signature)
            return file_id, signature

    def finish_upload(self, file_id: str, signature: str | None, content: bytes) -> None:
        with self.lock:
            pending = self.pending_uploads.get(file_id)
            if pending is None or pending[2] != signature:
                raise ApiError(
                    403,
                    f"No upload of {file_id} was started with this signature; start it "
                    "again with POST /v1/files.",
                    type="access_denied",
                )
            del self.pending_uploads[file_id]
            self._store(file_id, pending[0], pending[1], content)

    def _store(self, file_id: str, filename: str, purpose: str, content: bytes) -> dict[str, Any]:
        path = self.files_dir / file_id
        path.write_bytes(content)
        stored = StoredFile(file_id, filename, purpose, len(content), self.now(), path)
        self.files[file_id] = stored
        self._save()
        return file_api(stored)

    def _file(self, file_id: str) -> StoredFile:
        stored = self.files.get(file_id)
        if stored is None:
            raise no_such_file(file_id)
        return stored

    def retrieve_file(self, file_id: str) -> dict[str, Any]:
        with self.lock:
            return file_api(self._file(file_id))

    def file_content(self, file_id: str) -> bytes:
        with self.lock:
            return self._file(file_id).path.read_bytes()

    def list_files(self) -> dict[str, Any]:
        with self.lock:
            ordered = sorted(self.files.values(), key=lambda f: f.created_at)
            return {"data": [file_api(f) for f in ordered]}

    # -------------------------------------------------------------------- jobs

    def _settled(self, job_id: str) -> TogetherJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise no_such_job(job_id)
        lifecycle.settle(self, job, self.now())
        return job

    def settled_job(self, job_id: str) -> TogetherJob:
        """The job brought up to the clock's now (hold ``lock`` while using it)."""
        with self.lock:
            return self._settled(job_id)

    def create_job(self, request: TogetherJobRequest) -> dict[str, Any]:
        with self.lock:
            for param, file_id in (
                ("training_file", request.training_file),
                ("validation_file", request.validation_file),
            ):
                if file_id is not None and file_id not in self.files:
                    raise invalid(f"{param} {file_id} does not exist.", param=param)
            now = self.now()
            job_id = self._new_id("ft-")
            name = request.model.name.split("/")[-1]
            suffix = f"-{request.suffix}" if request.suffix else ""
            job = TogetherJob(
                id=job_id,
                model=request.model.name,
                training_file=request.training_file,
                validation_file=request.validation_file,
                created_at=now,
                param_count=request.model.param_count,
                n_epochs=request.n_epochs,
                n_checkpoints=request.n_checkpoints,
                n_evals=request.n_evals,
                batch_size=request.batch_size,
                learning_rate=request.learning_rate,
                training_method=request.training_method,
                training_type=request.training_type,
                suffix=request.suffix,
                model_output_name=f"sandbox/{name}{suffix}-{job_id[3:11]}",
                status_since=now,
                updated_at=now,
            )
            lifecycle.add_event(job, now, "job_pending", "Fine tune request created")
            self.jobs[job_id] = job
            self._save()
            return job.to_api_truncated()

    def retrieve_job(self, job_id: str) -> dict[str, Any]:
        with self.lock:
            job = self._settled(job_id)
            self._save()
            return job.to_api()

    def list_jobs(self) -> dict[str, Any]:
        with self.lock:
            jobs = [self._settled(job_id) for job_id in self.jobs]
            self._save()
            jobs.sort(key=lambda j: j.created_at, reverse=True)
            return {"data": [job.to_api_truncated() for job in jobs]}

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        with self.lock:
            job = self._settled(job_id)
            if job.is_terminal or job.status == "cancel_requested":
                raise invalid(
                    f"Fine-tune job {job_id} is {job.status} and cannot be cancelled.",
                    param="id",
                )
            lifecycle.request_cancel(self, job, self.now())
            self._dirty = True
            self._save()
            return job.to_api_truncated()

    def delete_job(self, job_id: str) -> dict[str, Any]:
        """``DELETE /fine-tunes/{id}``: forget an ended job and its outputs (a job still
        working must be cancelled first)."""
        with self.lock:
            job = self._settled(job_id)
            if not job.is_terminal:
                raise invalid(
                    f"Fine-tune job {job_id} is {job.status}; cancel it before deleting it.",
                    param="id",
                )
            del self.jobs[job_id]
            self._dirty = True
            self._save()
            return {"message": f"Fine-tune job {job_id} deleted"}

    def list_metrics(
        self, job_id: str, step_from: int | None = None, step_to: int | None = None
    ) -> dict[str, Any]:
        """``GET /fine-tunes/{id}/metrics``: one flat snapshot per training step run so
        far, in order, from the emulator's deterministic curves (app/sandbox/metrics.py),
        filtered by ``global_step_from`` / ``global_step_to``."""
        with self.lock:
            job = self._settled(job_id)
            steps_done, total = job.steps_done, job.total_steps
            per_epoch = max(1, total // max(1, job.n_epochs))
            seed = int(job.id.replace("-", "")[3:11], 16)
            has_validation = job.validation_file is not None and job.n_evals > 0
            learning_rate = job.learning_rate
        low = max(1, step_from or 1)
        high = min(steps_done, step_to if step_to is not None else steps_done)
        snapshots = []
        for step in range(low, high + 1):
            data = step_metrics(
                seed, step, total, steps_per_epoch=per_epoch, has_validation=has_validation
            )
            snapshot: dict[str, float] = {
                "train/global_step": step,
                "train/loss": data["train_loss"],
                # linear decay to zero, Together's default scheduler shape for the emulator
                "train/learning_rate": learning_rate * (1 - (step - 1) / max(1, total)),
                "train/epoch": step / per_epoch,
            }
            if "valid_loss" in data:
                snapshot["eval/loss"] = data["valid_loss"]
            snapshots.append(snapshot)
        return {"metrics": snapshots}

    def list_events(self, job_id: str) -> dict[str, Any]:
        with self.lock:
            job = self._settled(job_id)
            return {"data": [event.to_api(job) for event in job.events]}

    def list_checkpoints(self, job_id: str) -> dict[str, Any]:
        """Checkpoints saved so far, newest first: the intermediate ones from the
        ``checkpoint_save`` events, and once completed the final output (for LoRA the
        adapter and the merged model, as the service lists them)."""
        with self.lock:
            job = self._settled(job_id)
            saved = [
                {
                    "step": event.step,
                    "path": event.checkpoint_path,
                    "created_at": iso(event.created_at),
                    "checkpoint_type": "Intermediate",
                }
                for event in job.events
                if event.type == "checkpoint_save" and event.step < job.total_steps
            ]
            if job.status == "completed":
                kinds = ["Final Merged", "Final Adapter"] if job.lora else ["Final"]
                saved += [
                    {
                        "step": job.total_steps,
                        "path": f"{job.model_output_path}/{kind.split()[-1].lower()}",
                        "created_at": iso(job.updated_at),
                        "checkpoint_type": kind,
                    }
                    for kind in kinds
                ]
            return {"data": saved[::-1]}

    # ------------------------------------------------------------- serving

    def _fine_tuned_names(self) -> list[str]:
        return [
            self._settled(job_id).model_output_name
            for job_id in list(self.jobs)
            if self._settled(job_id).status == "completed"
        ]

    def list_models(self) -> list[dict[str, Any]]:
        with self.lock:
            return serving.list_models(self._fine_tuned_names())

    def _memory_of(self, job: TogetherJob) -> Memory:
        """What a finished fine-tune answers from when served: its training examples
        (built on its first chat; a deleted file leaves nothing to recall)."""
        memory = self._memories.get(job.model_output_name)
        if memory is None:
            stored = self.files.get(job.training_file)
            content = stored.path.read_bytes() if stored else b""
            examples = load_examples(content, TOKENIZER_PROXY)
            memory = Memory([Pair(e.prompt, e.reply) for e in examples])
            self._memories[job.model_output_name] = memory
        return memory

    def _fine_tuned_memories(self) -> dict[str, Memory | None]:
        """Every finished fine-tune's name -> what it answers from (`serve_fine_tunes`)."""
        served: dict[str, Memory | None] = {}
        for job_id in list(self.jobs):
            job = self._settled(job_id)
            if job.status == "completed":
                served[job.model_output_name] = self._memory_of(job)
        return served

    def chat(self, body: Any) -> dict[str, Any]:
        with self.lock:
            self._check_endpoint_is_up(body)
            fine_tuned = set(self._fine_tuned_names())
            served = self._served_models(fine_tuned)
            if self.serve_fine_tunes:  # as if every finished fine-tune had its endpoint
                served = {**self._fine_tuned_memories(), **served}
            return serving.chat(
                body, fine_tuned, self._new_id("chat-"), int(self.now()), served=served
            )

    # ------------------------------------------------------------- endpoints

    def _step_s(self) -> float:
        return self.timing.seconds_per_step

    def _served_models(self, fine_tuned: set[str]) -> dict[str, Memory | None]:
        """Names chat answers through a STARTED endpoint (the endpoint's and its model's)
        -> the fine-tune's memory, or None for a base model."""
        served: dict[str, Memory | None] = {}
        for endpoint in self.endpoints.values():
            if endpoint.state(self.now(), self._step_s()) != "STARTED":
                continue
            memory = None
            if endpoint.model in fine_tuned:
                job = next(j for j in self.jobs.values() if j.model_output_name == endpoint.model)
                memory = self._memory_of(job)
            served[endpoint.name] = served[endpoint.model] = memory
        return served

    def _check_endpoint_is_up(self, body: Any) -> None:
        """A chat by the name of an endpoint that is not STARTED is refused saying why."""
        model = body.get("model") if isinstance(body, dict) else None
        for endpoint in self.endpoints.values():
            state = endpoint.state(self.now(), self._step_s())
            if endpoint.name == model and state != "STARTED":
                raise ApiError(
                    400,
                    f"Endpoint {endpoint.name} is {state}: it answers once STARTED (GET "
                    f"/v1/endpoints/{endpoint.id}; a stopped one starts with PATCH "
                    '{"state": "STARTED"}).',
                    param="model",
                    code="model_not_available",
                )

    def _endpoint(self, endpoint_id: str) -> Endpoint:
        endpoint = self.endpoints.get(endpoint_id)
        if endpoint is None:
            raise ApiError(404, f"Endpoint {endpoint_id} not found", param="id", code="not_found")
        return endpoint

    def create_endpoint(self, body: Any) -> dict[str, Any]:
        """``POST /endpoints``: a dedicated endpoint for a base model or a completed
        fine-tune, started at once unless ``state`` says STOPPED."""
        model, hw, low, high, wanted = endpoints.check_create(body)
        with self.lock:
            if model not in catalog.MODELS and model not in self._fine_tuned_names():
                raise ApiError(
                    404,
                    f"Unable to access model {model}: deploy a base model (GET /v1/models) "
                    "or the output_name of a completed fine-tune.",
                    param="model",
                    code="model_not_found",
                )
            now = self.now()
            endpoint_id = self._new_id("endpoint-")
            endpoint = Endpoint(
                id=endpoint_id,
                name=f"sandbox/{model.split('/')[-1]}-{endpoint_id[9:17]}",
                display_name=str(body.get("display_name") or model),
                model=model,
                hardware=hw,
                min_replicas=low,
                max_replicas=high,
                created_at=now,
                wanted="STOPPED",
                started_at=None,
            )
            if wanted == "STARTED":
                endpoint.start(now)
            self.endpoints[endpoint_id] = endpoint
            self._save()
            return endpoint.to_api(now, self._step_s())

    def retrieve_endpoint(self, endpoint_id: str) -> dict[str, Any]:
        with self.lock:
            return self._endpoint(endpoint_id).to_api(self.now(), self._step_s())

    def list_endpoints(self, kind: str | None = None) -> dict[str, Any]:
        """``GET /endpoints``: the account's dedicated endpoints (the emulator lists no
        serverless ones: its base models are on ``GET /models``)."""
        with self.lock:
            listed = [] if kind == "serverless" else list(self.endpoints.values())
            listed.sort(key=lambda e: e.created_at)
            now, step_s = self.now(), self._step_s()
            return {"object": "list", "data": [e.to_list_api(now, step_s) for e in listed]}

    def update_endpoint(self, endpoint_id: str, body: Any) -> dict[str, Any]:
        """``PATCH /endpoints/{id}``: start or stop it, rename it, rescale it."""
        if not isinstance(body, dict):
            raise invalid("The request body must be a JSON object.")
        wanted = endpoints.wanted_state(body, None)
        replicas = endpoints.autoscaling(body, required=False)
        with self.lock:
            endpoint = self._endpoint(endpoint_id)
            now = self.now()
            if wanted == "STOPPED":
                endpoint.stop(now, self._step_s())
            elif wanted == "STARTED":
                endpoint.start(now)
            if replicas is not None:
                # the bill so far at the old size, the rest at the new one
                running = endpoint.wanted == "STARTED"
                endpoint.stop(now, self._step_s())
                endpoint.min_replicas, endpoint.max_replicas = replicas
                if running:
                    endpoint.start(now)
            if isinstance(body.get("display_name"), str):
                endpoint.display_name = body["display_name"]
            self._dirty = True
            self._save()
            return endpoint.to_api(now, self._step_s())

    def delete_endpoint(self, endpoint_id: str) -> None:
        """Deleting stops the bill; what it ran up stays on the account's bill."""
        with self.lock:
            endpoint = self._endpoint(endpoint_id)
            endpoint.stop(self.now(), self._step_s())
            self.deleted_endpoints[endpoint_id] = self.endpoints.pop(endpoint_id)
            self._dirty = True
            self._save()

    def endpoint_cost_cents(self, endpoint_id: str) -> float:
        """What the endpoint (deleted or not) has been billed so far: the emulator's bill,
        which Together's API has no route for (see `endpoint_bills`)."""
        with self.lock:
            endpoint = self.deleted_endpoints.get(endpoint_id) or self._endpoint(endpoint_id)
            return endpoint.billed_cents(self.now(), self._step_s())

    def endpoint_bills(self) -> dict[str, Any]:
        """The emulator's inspection route ``GET /sandbox/endpoint-bills``: every
        endpoint's bill so far, deleted ones included (state ``DELETED``), in cents."""
        with self.lock:
            now, step_s = self.now(), self._step_s()
            rows = [(e, e.state(now, step_s)) for e in self.endpoints.values()] + [
                (e, "DELETED") for e in self.deleted_endpoints.values()
            ]
            rows.sort(key=lambda pair: pair[0].created_at)
            return {
                "object": "list",
                "data": [
                    {
                        "id": e.id,
                        "model": e.model,
                        "hardware": e.hardware,
                        "state": state,
                        "min_replicas": e.min_replicas,
                        "billed_cents": e.billed_cents(now, step_s),
                    }
                    for e, state in rows
                ],
            }

    def list_hardware(self, model: str | None = None) -> dict[str, Any]:
        """``GET /hardware``: every configuration, each available for any model."""
        updated = iso(self.now())
        return {
            "object": "list",
            "data": [hardware_api(hw, updated) for hw in HARDWARE.values()],
        }

    # ------------------------------------------------------------- pricing

    def estimate_price(self, request: TogetherJobRequest) -> dict[str, Any]:
        """``POST /fine-tunes/estimate-price``: the price the job will report as
        ``total_price`` if it runs to the end, by the same rate table."""
        with self.lock:
            train = load_examples(
                self._file(request.training_file).path.read_bytes(), TOKENIZER_PROXY
            )
            evals = []
            if request.validation_file:
                content = self._file(request.validation_file).path.read_bytes()
                evals = load_examples(content, TOKENIZER_PROXY)
        train_tokens = request.n_epochs * sum(e.tokens for e in train)
        eval_tokens = request.n_evals * sum(e.tokens for e in evals)
        nanodollars = rates.price_nanodollars(
            train_tokens + eval_tokens,
            request.model.param_count,
            method=request.method,
            lora=request.lora,
        )
        dollars = nanodollars / rates.NANODOLLARS_PER_DOLLAR
        return {
            "estimation_available": True,
            "estimated_total_price": dollars,
            "allowed_to_proceed": dollars <= self.credit_limit_dollars,
            "user_limit": self.credit_limit_dollars,
            "estimated_train_token_count": train_tokens,
            "estimated_eval_token_count": eval_tokens,
        }

    @staticmethod
    def model_limits(model_name: str | None) -> dict[str, Any]:
        if not model_name:
            raise invalid("Missing required parameter: 'model_name'.", param="model_name")
        return catalog.limits(catalog.fine_tunable(model_name, param="model_name", status=404))

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
            "kind": STATE_KIND,
            "version": STATE_VERSION,
            "clock": self.now(),
            "files": [f.to_state() for f in self.files.values()],
            "jobs": [j.to_state() for j in self.jobs.values()],
            "endpoints": [e.to_state() for e in self.endpoints.values()],
            "deleted_endpoints": [e.to_state() for e in self.deleted_endpoints.values()],
        }
        tmp = self.state_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.state_file)

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the sandbox state file {path}: {exc}") from None
        if data.get("kind") != STATE_KIND or data.get("version") != STATE_VERSION:
            raise ValueError(
                f"{path} is not a Together sandbox state of this version; move it away to "
                "start afresh"
            )
        # Time never runs backwards across a restart.
        behind = float(data.get("clock", 0.0)) - self.clock.now()
        if behind > 0:
            self.clock.advance(behind)
        self.files = {f["id"]: StoredFile.from_state(f) for f in data["files"]}
        self.jobs = {j["id"]: TogetherJob.from_state(j) for j in data["jobs"]}
        # absent from state files written before endpoints were emulated
        self.endpoints = {e["id"]: Endpoint.from_state(e) for e in data.get("endpoints", [])}
        self.deleted_endpoints = {
            e["id"]: Endpoint.from_state(e) for e in data.get("deleted_endpoints", [])
        }
