"""The OpenAI provider: hosted fine-tuning through the official ``openai`` SDK.

Retries are ftm's own (the SDK client is built with ``max_retries=0``): every call that is
safe to repeat retries with exponential backoff and jitter, honouring ``Retry-After``;
`create`, which is not safe to repeat, looks the job up by its ``ftm_job_id`` metadata
before every retry, so a response lost after the job was made never makes a second,
billed job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel

from providers.backoff import retry_idempotent
from providers.base import Capabilities, Provider, ProviderContext
from providers.create_once import create_exactly_once
from providers.errors import ProviderError, SpecRejected
from providers.openai import convert
from providers.openai.config import OpenAIConfig, OpenAISettings, build_client, resolve_api_key
from providers.openai.errors import translate
from providers.openai.lifecycle import Lifecycle, load_lifecycle
from providers.openai.prices import openai_price_table
from providers.openai.recipe import recipe_for_openai, translate_for_openai
from providers.openai.uploads import MemoryUploadCache, UploadCache, file_sha256
from providers.pricing import PriceTable
from providers.recipe import RecipeTranslation, TrainingRecipe
from providers.types import (
    Artifact,
    BaseModelInfo,
    ChatMessage,
    Completion,
    Deployment,
    JobSpec,
    JobStatus,
    Refresh,
    RemoteJob,
    Upstream,
)

T = TypeVar("T")

METADATA_KEY = "ftm_job_id"
EVENTS_PAGE = 50
MAX_EVENT_PAGES = 200


class OpenAIProvider(Provider):
    """OpenAI hosted fine-tuning (also Azure OpenAI, and the local sandbox emulator)."""

    name = "openai"
    display_name = "OpenAI"
    capabilities = Capabilities(
        can_pause=True,
        supports_dpo=True,
        supports_auto_hyperparameters=True,
        per_token_billing=True,
        methods=("supervised", "dpo"),
    )
    settings_model: ClassVar[type[BaseModel]] = OpenAISettings
    settings_alias: ClassVar[str | None] = "openai"

    @classmethod
    def from_config(cls, config: BaseModel, context: ProviderContext) -> OpenAIProvider:
        """Its client config from `OpenAISettings`; uploaded files cached in ftm's database
        (so a relaunch does not upload the same file twice)."""
        from providers.openai.uploads import SqlUploadCache

        cache = SqlUploadCache(context.engine()) if context.engine else None
        return cls(OpenAIConfig(**config.model_dump()), upload_cache=cache)

    def model_endpoint(self, *, simulated: bool = False) -> str | None:
        """The configured API (Azure, a gateway or OpenAI's); the emulator's for a model
        trained there."""
        if simulated or self.config.sandbox:
            return self.config.sandbox_url
        return self.config.endpoint

    def __init__(
        self,
        config: OpenAIConfig | None = None,
        *,
        upload_cache: UploadCache | None = None,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Cheap: nothing is read or connected until the first call."""
        self.config = config or OpenAIConfig()
        self.simulated = self.config.sandbox
        self.uploads: UploadCache = upload_cache or MemoryUploadCache()
        self._client = client
        self._api_key: str | None = None
        self._lock = threading.Lock()
        self._sleep = sleep

    # -- plumbing ---------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The SDK client, built on first use (raises ConfigurationError without a key)."""
        with self._lock:
            if self._client is None:
                self._api_key = self._resolve_api_key()
                self._client = self._build_client()
            return self._client

    def _resolve_api_key(self) -> str:
        """The key the client is built with (a subclass for another deployment of the API,
        such as Azure OpenAI, overrides this and `_build_client`)."""
        return resolve_api_key(self.config)

    def _build_client(self) -> Any:
        """The SDK client, built with the key `_resolve_api_key` gave."""
        assert self._api_key is not None  # `client` resolves it first
        # ftm retries by itself (see module docstring): the SDK must not.
        return build_client(replace(self.config, max_retries=0), self._api_key)

    def _secrets(self) -> list[str | None]:
        return [self._api_key, self.config.api_key]

    def _once(self, action: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One SDK call; any failure becomes a `ProviderError` free of secrets."""
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise translate(exc, action, self._secrets(), self.display_name) from None

    def _retrying(
        self,
        action: str,
        fn: Callable[..., T],
        *args: Any,
        _attempts: int | None = None,
        **kwargs: Any,
    ) -> T:
        """An idempotent SDK call, retried on retryable failures."""
        return retry_idempotent(
            lambda: self._once(action, fn, *args, **kwargs),
            attempts=_attempts or self.config.max_retries + 1,
            sleep=self._sleep,
        )

    # -- data -------------------------------------------------------------------------

    def validate_spec(self, spec: JobSpec) -> list[str]:
        problems = []
        if spec.method not in self.capabilities.methods:
            problems.append(
                f"method {spec.method!r} is not supported by {self.display_name} fine-tuning "
                f"(use one of: {', '.join(self.capabilities.methods)})"
            )
        hp = spec.hyperparameters
        checks = [
            ("n_epochs", hp.n_epochs, lambda v: isinstance(v, int) and 1 <= v <= 50, "1-50"),
            ("batch_size", hp.batch_size, lambda v: isinstance(v, int) and 1 <= v <= 256, "1-256"),
            (
                "learning_rate_multiplier",
                hp.learning_rate_multiplier,
                lambda v: isinstance(v, int | float) and v > 0,
                "> 0",
            ),
            ("beta", hp.beta, lambda v: isinstance(v, int | float) and v > 0, "> 0"),
        ]
        for name, value, ok, allowed in checks:
            if value != "auto" and not ok(value):
                problems.append(f"{name}={value!r} is out of range (allowed: {allowed} or auto)")
        if hp.beta != "auto" and spec.method != "dpo":
            problems.append("beta applies only to the dpo method")
        if hp.learning_rate is not None:
            problems.append(
                f"{self.display_name} takes a learning_rate_multiplier, not an absolute "
                "learning_rate"
            )
        if spec.suffix is not None and not 1 <= len(spec.suffix) <= 64:
            problems.append(f"suffix must be 1-64 characters (got {len(spec.suffix)})")
        if not Path(spec.train_path).is_file():
            problems.append(f"training file not found: {spec.train_path}")
        return problems

    @classmethod
    def lifecycle(cls) -> Lifecycle:
        """The service's job-creation cutoff, its wind-down stages and the base models'
        retirements, from lifecycle.toml."""
        return load_lifecycle()

    @classmethod
    def pricing(cls) -> PriceTable:
        """Per-token prices from prices.toml; each model's billable per-example token
        limit is its context limit from lifecycle.toml (the one source of that figure)."""
        return openai_price_table()

    @classmethod
    def contract_harness(cls) -> str:
        """The sandbox emulator (it lives with ftm's emulators, in app/sandbox)."""
        return "app.sandbox.harness:openai_contract_harness"

    def prepare(self, spec: JobSpec) -> JobSpec:
        """Upload the training (and validation) file, reusing earlier uploads of the same
        content, and wait until OpenAI has processed them."""
        options = dict(spec.options)
        options["training_file"] = self.upload_file(spec.train_path)
        if spec.validation_path and Path(spec.validation_path).stat().st_size > 0:
            options["validation_file"] = self.upload_file(spec.validation_path)
        return replace(spec, options=options)

    def upload_file(self, path: str | Path, purpose: str = "fine-tune") -> str:
        """The remote id of ``path``'s content: uploaded now, or reused when the same bytes
        were uploaded to the same endpoint before."""
        path = Path(path)
        content_hash = file_sha256(path)
        endpoint = self.config.endpoint
        cached = self.uploads.get(endpoint, content_hash, purpose)
        if cached:
            try:
                found = self._retrying(
                    "checking an uploaded file",
                    self.client.files.retrieve,
                    cached,
                    _attempts=self.config.create_attempts,
                )
                if found.status != "error":
                    return self._wait_processed(found)
            except ProviderError as err:
                if err.retryable:
                    raise
            self.uploads.forget(endpoint, content_hash, purpose)  # gone or broken: upload again
        size = path.stat().st_size
        uploaded = self._retrying(
            f"uploading {path.name}",
            lambda: self.client.files.create(file=(path.name, path.read_bytes()), purpose=purpose),
            _attempts=self.config.create_attempts,
        )
        self.uploads.put(endpoint, content_hash, purpose, uploaded.id, size)
        return self._wait_processed(uploaded)

    def _wait_processed(self, file_obj: Any) -> str:
        deadline = time.monotonic() + self.config.file_wait_s
        delay = 0.05
        while True:
            status = getattr(file_obj, "status", None) or "processed"
            if status == "processed":
                return file_obj.id
            if status == "error":
                details = getattr(file_obj, "status_details", None) or "no details given"
                raise ProviderError(
                    f"{self.display_name} could not process file {file_obj.id}: {details}",
                    code="file_error",
                    param="training_file",
                )
            if time.monotonic() > deadline:
                raise ProviderError(
                    f"file {file_obj.id} was still {status!r} after {self.config.file_wait_s:.0f}"
                    " s; try again later",
                    code="file_timeout",
                    retryable=True,
                )
            self._sleep(delay)
            delay = min(delay * 2, 2.0)
            file_obj = self._retrying(
                "waiting for a file",
                self.client.files.retrieve,
                file_obj.id,
                _attempts=self.config.create_attempts,
            )

    # -- jobs -------------------------------------------------------------------------

    def create_body(self, spec: JobSpec) -> dict[str, Any]:
        """The ``jobs.create`` arguments for a prepared spec."""
        if "training_file" not in spec.options:
            raise SpecRejected("the spec has no training_file: call prepare() first")
        hp = spec.hyperparameters
        hyper: dict[str, Any] = {
            "n_epochs": hp.n_epochs,
            "batch_size": hp.batch_size,
            "learning_rate_multiplier": hp.learning_rate_multiplier,
        }
        if spec.method == "dpo":
            hyper["beta"] = hp.beta
        body: dict[str, Any] = {
            "model": spec.base_model,
            "training_file": spec.options["training_file"],
            "method": {"type": spec.method, spec.method: {"hyperparameters": hyper}},
            "metadata": {METADATA_KEY: spec.ftm_job_uid},
        }
        if spec.options.get("validation_file"):
            body["validation_file"] = spec.options["validation_file"]
        if spec.suffix:
            body["suffix"] = spec.suffix
        if spec.seed is not None:
            body["seed"] = spec.seed
        return body

    def create(self, spec: JobSpec) -> RemoteJob:
        """Create the job exactly once (`providers.create_once`): OpenAI takes no
        idempotency key, so a failed create may still have made the job; it is looked up by
        the ``ftm_job_id`` metadata before a create is sent again, and after a failure that
        got no answer it is only looked up, ending ``create_unconfirmed`` if unseen (the
        poller keeps looking for `PollerSettings.unconfirmed_grace_s`).

        Raises:
            ProviderError: refused (not retryable: nothing was created), or, with code
                ``create_unconfirmed``, still unknown after every attempt.
        """
        if not spec.ftm_job_uid:
            raise SpecRejected("the spec has no ftm_job_uid: it is needed to create safely")
        body = self.create_body(spec)

        def send() -> RemoteJob:
            job = self._once(
                "creating the fine-tuning job", self.client.fine_tuning.jobs.create, **body
            )
            return convert.remote_job(job.to_dict())

        return create_exactly_once(
            send,
            lambda: self._find_once(spec.ftm_job_uid),
            attempts=self.config.create_attempts,
            timeout_s=self.config.timeout_s,
            sleep=self._sleep,
        )

    def _find_once(self, ftm_job_uid: str) -> RemoteJob | None:
        page = self._once(
            "looking up the job by its ftm id",
            self.client.fine_tuning.jobs.list,
            metadata={METADATA_KEY: ftm_job_uid},
            limit=10,
        )
        for _ in range(20):  # a server that ignores the filter: check every job, bounded
            for job in page.data:
                raw = job.to_dict()
                if (raw.get("metadata") or {}).get(METADATA_KEY) == ftm_job_uid:
                    return convert.remote_job(raw)
            if not page.has_more or not page.data:
                return None
            page = self._once(
                "looking up the job by its ftm id",
                self.client.fine_tuning.jobs.list,
                metadata={METADATA_KEY: ftm_job_uid},
                limit=100,
                after=page.data[-1].id,
            )
        return None

    def find_by_uid(self, ftm_job_uid: str) -> RemoteJob | None:
        return self._retrying(
            "looking up the job by its ftm id",
            self._find_once,
            ftm_job_uid,
            _attempts=self.config.create_attempts,
        )

    def refresh(self, remote_id: str, events_cursor: str | None = None) -> Refresh:
        """The job now, with events newer than ``events_cursor`` (oldest first), the metric
        points they carry, the checkpoints, and on success the result file's metrics."""
        raw = self._retrying(
            f"reading job {remote_id}", self.client.fine_tuning.jobs.retrieve, remote_id
        ).to_dict()
        events = self._new_events(remote_id, events_cursor)
        metrics = [m for m in (convert.metric_from_event(e) for e in events) if m is not None]
        step = total = None
        for ev in events:
            data = ev.data or {}
            if ev.type == "metrics" and "step" in data:
                step, total = int(data["step"]), data.get("total_steps", total)
        job = convert.remote_job(raw, step=step, total_steps=int(total) if total else None)
        checkpoints = []
        if job.status == JobStatus.SUCCEEDED or any(
            "checkpoint" in e.message.lower() for e in events
        ):
            checkpoints = self.list_checkpoints(remote_id)
        artifacts = []
        if job.status == JobStatus.SUCCEEDED:
            for file_id in raw.get("result_files") or []:
                text = self._retrying(
                    "downloading the result file", self.client.files.content, file_id
                ).text
                metrics.extend(convert.metrics_from_result_csv(text))
                artifacts.append(Artifact(kind="result_file", uri=f"openai-file:{file_id}"))
        return Refresh(
            job=job,
            events=events,
            events_cursor=events[-1].id if events else events_cursor,
            metrics=metrics,
            checkpoints=checkpoints,
            artifacts=artifacts,
        )

    def _new_events(self, remote_id: str, cursor: str | None) -> list:
        """Events newer than ``cursor``, oldest first.

        The API lists newest first and ``after=<id>`` continues to OLDER events, so: read
        pages from the newest until the cursor shows up (usually on the first page).
        """
        collected: list[Any] = []
        after: str | None = None
        for _ in range(MAX_EVENT_PAGES):
            kwargs: dict[str, Any] = {"limit": EVENTS_PAGE}
            if after:
                kwargs["after"] = after
            page = self._retrying(
                f"reading events of {remote_id}",
                self.client.fine_tuning.jobs.list_events,
                remote_id,
                **kwargs,
            )
            for item in page.data:
                if cursor is not None and item.id == cursor:
                    return [convert.event(e.to_dict()) for e in reversed(collected)]
                collected.append(item)
            if not page.has_more or not page.data:
                break
            after = page.data[-1].id
        return [convert.event(e.to_dict()) for e in reversed(collected)]

    def list_checkpoints(self, remote_id: str) -> list:
        out: list[Any] = []
        after: str | None = None
        for _ in range(50):
            kwargs: dict[str, Any] = {"limit": 100}
            if after:
                kwargs["after"] = after
            page = self._retrying(
                f"reading checkpoints of {remote_id}",
                self.client.fine_tuning.jobs.checkpoints.list,
                remote_id,
                **kwargs,
            )
            out.extend(convert.checkpoint(c.to_dict()) for c in page.data)
            if not page.has_more or not page.data:
                break
            after = page.data[-1].id
        return sorted(out, key=lambda c: c.step)

    def _job_action(self, verb: str, fn: Callable[..., Any], remote_id: str) -> RemoteJob:
        # cancel/pause/resume are idempotent enough to retry: a repeat of a done action is
        # refused with a 4xx, which is reported, not retried.
        return convert.remote_job(
            self._retrying(f"{verb} job {remote_id}", fn, remote_id).to_dict()
        )

    def cancel(self, remote_id: str) -> RemoteJob:
        return self._job_action("cancelling", self.client.fine_tuning.jobs.cancel, remote_id)

    def pause(self, remote_id: str) -> RemoteJob:
        return self._job_action("pausing", self.client.fine_tuning.jobs.pause, remote_id)

    def resume(self, remote_id: str) -> RemoteJob:
        return self._job_action("resuming", self.client.fine_tuning.jobs.resume, remote_id)

    def list_remote_jobs(self, limit: int = 100) -> list[RemoteJob]:
        """Jobs at OpenAI, newest first (for `ftm jobs import`)."""
        out: list[RemoteJob] = []
        after: str | None = None
        while len(out) < limit:
            kwargs: dict[str, Any] = {"limit": min(100, limit - len(out))}
            if after:
                kwargs["after"] = after
            page = self._retrying(
                "listing fine-tuning jobs", self.client.fine_tuning.jobs.list, **kwargs
            )
            for job in page.data:
                raw = job.to_dict()
                out.append(
                    replace(
                        convert.remote_job(raw),
                        hyperparameters=(convert.hyperparameters_of(raw) or {})
                        | {"method": convert.method_of(raw)},
                    )
                )
            if not page.has_more or not page.data:
                break
            after = page.data[-1].id
        return out[:limit]

    # -- models -----------------------------------------------------------------------

    def list_base_models(self) -> list[BaseModelInfo]:
        """Fine-tunable base models with retirement dates, from lifecycle.toml."""
        return list(self.lifecycle().models)

    def complete(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> Completion:
        started = time.perf_counter()
        response = self._retrying(
            f"asking {model}",
            self.client.chat.completions.create,
            model=model,
            messages=[{"role": m.role, "content": m.content} for m in messages],
            max_tokens=max_tokens,
            temperature=temperature,
        )
        latency = (time.perf_counter() - started) * 1000
        usage = response.usage
        return Completion(
            text=response.choices[0].message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            latency_ms=latency,
            model=response.model,
        )

    def _upstream_key(self) -> str:
        """The key, resolved once and kept like the client's (`upstream` is asked on every
        gateway request: a key command must not run each time)."""
        with self._lock:
            if self._api_key is None:
                self._api_key = self._resolve_api_key()
            return self._api_key

    def upstream(self, model: str, deployment: Deployment | None = None) -> Upstream | None:
        """The configured API (the emulator's in sandbox mode, a proxy's, Azure's, else
        OpenAI's) with a Bearer key; a model on Azure through its deployment's URL."""
        key = self._upstream_key()
        served = deployment.name if deployment is not None else model
        if self.config.azure_endpoint and not self.config.sandbox:
            return Upstream(
                f"{self.config.azure_endpoint.rstrip('/')}/openai/deployments/{served}",
                served,
                {"api-key": key},
                {"api-version": self.config.azure_api_version},
            )
        base = (deployment.endpoint_url if deployment else None) or self.config.endpoint
        headers = {"Authorization": f"Bearer {key}"}
        if not self.config.sandbox:
            if self.config.organization:
                headers["OpenAI-Organization"] = self.config.organization
            if self.config.project:
                headers["OpenAI-Project"] = self.config.project
        return Upstream(base, served, headers)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- migration: training recipes ----------------------------------------------------

    @classmethod
    def recipe_from_job(
        cls, method: str, hyperparameters: Mapping[str, Any] | None, spec: Mapping[str, Any] | None
    ) -> TrainingRecipe:
        """The neutral reading, with the multiplier on OpenAI's scale (Azure's too)."""
        return recipe_for_openai(super().recipe_from_job(method, hyperparameters, spec))

    @classmethod
    def translate_recipe(cls, recipe: TrainingRecipe) -> RecipeTranslation:
        """Epochs and batch size carried; a multiplier only from OpenAI's scale; no LoRA
        knobs (see providers.openai.recipe)."""
        return translate_for_openai(recipe, cls.display_name)
