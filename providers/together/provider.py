"""The Together AI provider: hosted fine-tuning through the official ``together`` SDK.

The same rules as the OpenAI provider: retries are ftm's own (the SDK's are off), calls
safe to repeat retry with backoff and jitter honouring ``Retry-After``, and `create`,
which Together gives no idempotency key for, looks the job up before any resend: ftm's uid
travels in the job's suffix, which Together keeps (and puts in the output model name).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel

from providers.backoff import backoff_delay, retry_idempotent
from providers.base import Capabilities, Provider, ProviderContext, ProviderOption
from providers.create_once import CREATE_UNCONFIRMED, create_exactly_once
from providers.errors import ProviderError, SpecRejected
from providers.pricing import PriceTable
from providers.recipe import RecipeTranslation, TrainingRecipe
from providers.together import convert, endpoints, limits, weights
from providers.together.config import (
    TogetherConfig,
    TogetherSettings,
    build_client,
    resolve_api_key,
)
from providers.together.errors import NOT_SENT, failed_request, translate
from providers.together.prices import together_price_table
from providers.together.recipe import recipe_from_together_job, translate_for_together
from providers.types import (
    Artifact,
    BaseModelInfo,
    ChatMessage,
    Completion,
    Deployment,
    HardwareOption,
    JobEvent,
    JobSpec,
    JobStatus,
    ProviderQuote,
    Refresh,
    RemoteJob,
    Upstream,
)

T = TypeVar("T")


def _raw(obj: Any) -> dict[str, Any]:
    """An SDK object as the JSON the API sent (values the SDK's enums do not know, such
    as newer event types, are kept as they came)."""
    return obj.to_dict(mode="json", warnings=False)


CREATE_PATH = "/v1/fine-tunes"
METHODS = {"supervised": "sft", "dpo": "dpo"}
BASE_MODELS = (
    "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
    "meta-llama/Meta-Llama-3.1-70B-Instruct-Reference",
    "meta-llama/Llama-3.2-1B-Instruct",
)
"""Fine-tunable models ftm suggests (Together lists many more; any name it accepts works)."""
SANDBOX_MODELS = ("ftm-sandbox/tiny-llama",)
"""Models only ftm's Together emulator fine-tunes (a tiny Llama with real weights to
download): suggested too when the provider talks to the emulator."""


DEPLOY_POLL_S = (0.5, 1.0, 2.0, 5.0)
"""Seconds between reads of an endpoint that is starting: soon at first (an emulator's is
up in moments), then every 5 s (Together's takes minutes)."""
_FTM_FINE_TUNE = re.compile(convert.UID_TAG_PREFIX + f"[0-9a-f]{{{convert.UID_TAG_HEX}}}")
"""ftm's uid tag, which Together keeps in a fine-tune's output name (see convert.uid_tag)."""


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


class TogetherProvider(Provider):
    """Together AI hosted fine-tuning (also the local emulator, `ftm sandbox --provider
    together`)."""

    name = "together"
    display_name = "Together AI"
    capabilities = Capabilities(
        supports_dpo=True,
        # Epochs, batch size and the learning-rate multiplier apply, each "auto" filled
        # with Together's default (1 epoch, the largest batch, 1e-5; see create_kwargs).
        supports_auto_hyperparameters=True,
        per_token_billing=True,
        methods=("supervised", "dpo"),
        downloadable_weights=("adapter", "merged"),
    )
    options = (
        ProviderOption("lora", "LoRA (true) or full fine-tuning (false)", bool, True),
        ProviderOption("lora_r", "LoRA rank (the model's max_rank at most)", int, 8),
        ProviderOption("lora_alpha", "LoRA alpha (default: twice the rank)", int),
        ProviderOption("lora_dropout", "LoRA dropout, in [0, 1)", float, 0.0),
        ProviderOption(
            "lora_trainable_modules", "LoRA target modules, comma separated", str, "all-linear"
        ),
        ProviderOption("n_evals", "Evaluations on the validation split during training", int, 0),
        ProviderOption("n_checkpoints", "Checkpoints saved during training", int, 1),
        ProviderOption(
            "train_on_inputs",
            "Train on the prompts too (sft)",
            str,
            "auto",
            ("auto", "true", "false"),
        ),
    )
    settings_model: ClassVar[type[BaseModel]] = TogetherSettings

    @classmethod
    def from_config(cls, config: BaseModel, context: ProviderContext) -> TogetherProvider:
        return cls(TogetherConfig(**config.model_dump()))

    def __init__(
        self,
        config: TogetherConfig | None = None,
        *,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Cheap: nothing is imported, read or connected until the first call."""
        self.config = config or TogetherConfig()
        self.simulated = self.config.sandbox
        self._client = client
        self._api_key: str | None = None
        self._lock = threading.Lock()
        self._sleep = sleep
        self._limits: dict[str, Any] = {}
        """model -> the SDK's limits object (read once per model and process)."""
        self._uploads: dict[tuple[str, str], str] = {}
        """(endpoint, content sha256) -> file id uploaded by this process."""
        self._deploy_lock = threading.Lock()
        """Held while a fine-tune's endpoint is found or created: parallel completions
        (an evaluation's batch) must never create two billed endpoints."""
        self._endpoint_names: dict[str, str] = {}
        """fine-tune -> the name of its endpoint, seen STARTED by this process."""

    # -- declared data: prices, test harness, migration recipes -------------------------

    @classmethod
    def pricing(cls) -> PriceTable:
        """Per-token training (LoRA; full in ``training_full``) and base-model prices, and
        the dedicated endpoint's hourly fee that serves a fine-tune (prices.toml)."""
        return together_price_table()

    @classmethod
    def contract_harness(cls) -> str:
        """The Together emulator (with ftm's emulators, in app/sandbox)."""
        return "app.sandbox.together.harness:together_contract_harness"

    @classmethod
    def recipe_from_job(
        cls, method: str, hyperparameters: Mapping[str, Any] | None, spec: Mapping[str, Any] | None
    ) -> TrainingRecipe:
        """Together's absolute rate, LoRA or full, and its LoRA knobs (see
        providers.together.recipe)."""
        return recipe_from_together_job(method, hyperparameters, spec)

    @classmethod
    def translate_recipe(cls, recipe: TrainingRecipe) -> RecipeTranslation:
        """An absolute learning rate (a multiplier through the base rate 1e-5), LoRA or
        full, and the LoRA knobs as options (see providers.together.recipe)."""
        return translate_for_together(recipe, cls.display_name)

    @classmethod
    def auto_epochs(cls, n_examples: int) -> int:
        """Together's default, whatever the data's size (`create_kwargs` sends it)."""
        return limits.DEFAULT_EPOCHS

    def download_weights(self, remote_id: str, dest: Path, kind: str = "adapter") -> Artifact:
        """The job's ``adapter`` or ``merged`` weights in PEFT's layout (see
        providers.together.weights)."""
        return weights.download_artifact(self.client, remote_id, dest, kind)

    def model_endpoint(self, *, simulated: bool = False) -> str | None:
        base = self.config.sandbox_url if simulated else self.config.endpoint
        return base.rstrip("/") + "/v1"

    # -- plumbing ---------------------------------------------------------------------

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._api_key = resolve_api_key(self.config)
                self._client = build_client(self.config, self._api_key)
            return self._client

    def _secrets(self) -> list[str | None]:
        return [self._api_key, self.config.api_key]

    def _once(self, action: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise translate(exc, action, self._secrets()) from None

    def _retrying(
        self, action: str, fn: Callable[..., T], *args: Any, _attempts: int | None = None, **kw: Any
    ) -> T:
        """An idempotent call, retried on retryable failures."""
        return retry_idempotent(
            lambda: self._once(action, fn, *args, **kw),
            attempts=_attempts or self.config.max_retries + 1,
            sleep=self._sleep,
        )

    # -- limits and validation ----------------------------------------------------------

    def model_limits(self, model: str) -> dict[str, Any]:
        """``/fine-tunes/models/limits`` for ``model`` as a dict (read once)."""
        return _raw(self._limits_object(model))

    def _limits_object(self, model: str) -> Any:
        if model not in self._limits:
            self._limits[model] = self._retrying(
                f"reading the fine-tuning limits of {model}",
                self.client.fine_tuning.model_limits,
                model_name=model,
                _attempts=self.config.create_attempts,
            )
        return self._limits[model]

    def validate_spec(self, spec: JobSpec) -> list[str]:
        """Local checks, then the spec against the model's limits read from Together (a
        refused model or an unreachable service is a problem too: nothing can be sent)."""
        problems = limits.local_problems(spec, self.capabilities.methods)
        try:
            model_limits = self.model_limits(spec.base_model)
        except ProviderError as err:
            if err.code in ("invalid_model", "not_found", "http_404"):
                return [*problems, f"{spec.base_model} cannot be fine-tuned: {err.message}"]
            return [*problems, f"could not check the spec against Together's limits: {err}"]
        return problems + limits.problems(spec, model_limits)

    def launch_warnings(self, spec: JobSpec) -> list[str]:
        """Serving costs Together bills apart from training (no network)."""
        price = self.pricing().models.get(spec.base_model)
        hourly = price.hosting_per_hour if price is not None else None
        rate = f" about ${hourly:.2f}/hour" if hourly else ""
        warnings = [
            "Together AI serves a fine-tuned model only on a dedicated endpoint, billed per "
            f"minute while it runs, idle or not ({self.config.endpoint_hardware}{rate}): ftm "
            "creates it on first use (an evaluation or `ftm chat`) and leaves it running; "
            "stop or delete it at Together when done, or download the weights and serve "
            "them elsewhere"
        ]
        if spec.base_model.endswith("-Reference"):
            warnings.append(
                f"{spec.base_model} is a -Reference model: Together cannot deploy it, so the "
                "fine-tune can only be downloaded"
            )
        return warnings

    # -- data -------------------------------------------------------------------------

    def prepare(self, spec: JobSpec) -> JobSpec:
        """Check each file with the SDK's own checker, then upload it (once per content
        per process)."""
        options = dict(spec.options)
        options["training_file"] = self.upload_file(spec.train_path)
        if spec.validation_path and Path(spec.validation_path).stat().st_size > 0:
            options["validation_file"] = self.upload_file(
                spec.validation_path, param="validation_file"
            )
        return replace(spec, options=options)

    def upload_file(self, path: str | Path, *, param: str = "training_file") -> str:
        client = self.client  # built first: it imports the SDK safely (see build_client)
        from together.lib import check_file

        path = Path(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        key = (self.config.endpoint, digest)
        if key in self._uploads:
            return self._uploads[key]
        report = check_file(path, purpose="fine-tune")
        if not report.get("is_check_passed"):
            reason = str(report.get("message") or "the file check failed").splitlines()[0]
            raise ProviderError(
                f"Together's file check refused {path.name}: {reason}; fix the dataset and "
                "launch again (nothing was uploaded)",
                code="invalid_file",
                param=param,
            )
        uploaded = self._retrying(
            f"uploading {path.name}",
            client.files.upload,
            path,
            purpose="fine-tune",
            check=False,  # checked just above, with the message kept
            _attempts=self.config.create_attempts,
        )
        self._uploads[key] = uploaded.id
        return uploaded.id

    # -- price ------------------------------------------------------------------------

    def quote(self, spec: JobSpec) -> ProviderQuote | None:
        """``/fine-tunes/estimate-price`` for a prepared spec."""
        if "training_file" not in spec.options:
            raise SpecRejected("the spec has no training_file: call prepare() first")
        body = self.create_kwargs(spec)
        lora_limits = self.model_limits(body["model"]).get("lora_training") or {}
        rank = body.get("lora_r") or lora_limits.get("default_rank") or 8
        kwargs: dict[str, Any] = {
            "training_file": body["training_file"],
            "model": body["model"],
            "n_epochs": body["n_epochs"],
            "n_evals": body["n_evals"],
            "training_method": {"method": body["training_method"]},
            "training_type": (
                {"type": "Lora", "lora_r": rank, "lora_alpha": body.get("lora_alpha") or 2 * rank}
                if body["lora"]
                else {"type": "Full"}
            ),
        }
        if body.get("validation_file"):
            kwargs["validation_file"] = body["validation_file"]
        answer = _raw(
            self._retrying(
                "asking Together for the job's price",
                self.client.fine_tuning.estimate_price,
                _attempts=self.config.create_attempts,
                **kwargs,
            )
        )
        if answer.get("estimation_available") is False:
            return None
        total = answer.get("estimated_total_price")
        allowed = answer.get("allowed_to_proceed", True) is not False
        limit = answer.get("user_limit")
        reason = None
        if not allowed:
            reason = (
                f"Together AI estimates ${float(total or 0):.2f}, over the account's limit"
                + (f" of ${float(limit):.2f}" if limit is not None else "")
                + "; add credit at Together or make the job smaller"
            )
        return ProviderQuote(
            total_usd=float(total) if total is not None else None,
            allowed_to_proceed=allowed,
            reason=reason,
            user_limit_usd=float(limit) if limit is not None else None,
            train_tokens=_int_or_none(answer.get("estimated_train_token_count")),
            eval_tokens=_int_or_none(answer.get("estimated_eval_token_count")),
        )

    # -- jobs -------------------------------------------------------------------------

    def create_kwargs(self, spec: JobSpec) -> dict[str, Any]:
        """The ``fine_tuning.create`` arguments for a prepared spec: ftm's fields mapped
        to Together's (see `limits.DEFAULT_LEARNING_RATE` for the learning rate)."""
        if "training_file" not in spec.options:
            raise SpecRejected("the spec has no training_file: call prepare() first")
        hp, opts = spec.hyperparameters, spec.options
        method = METHODS.get(spec.method, spec.method)
        body: dict[str, Any] = {
            "training_file": opts["training_file"],
            "model": spec.base_model,
            "n_epochs": limits.DEFAULT_EPOCHS if hp.n_epochs == "auto" else hp.n_epochs,
            "batch_size": "max" if hp.batch_size == "auto" else hp.batch_size,
            "learning_rate": limits.learning_rate(spec),
            "n_evals": int(opts.get("n_evals", 0)),
            "n_checkpoints": int(opts.get("n_checkpoints", 1)),
            "lora": limits.uses_lora(spec),
            "training_method": method,
            "suffix": convert.suffix_for(spec.suffix, spec.ftm_job_uid),
        }
        if opts.get("validation_file"):
            body["validation_file"] = opts["validation_file"]
        if body["lora"]:
            for key in ("lora_r", "lora_alpha", "lora_dropout", "lora_trainable_modules"):
                if key in opts:
                    body[key] = opts[key]
        if method == "sft":
            body["train_on_inputs"] = limits.train_on_inputs(opts)
        elif hp.beta != "auto":
            body["dpo_beta"] = float(hp.beta)
        if spec.seed is not None:
            body["random_seed"] = spec.seed
        return body

    def _create_once(self, body: dict[str, Any]) -> RemoteJob:
        """One ``fine_tuning.create``. The SDK asks for the price before it sends the job;
        a failure of that earlier request is reported as not sent."""
        try:  # the SDK needs the limits; reading them sends no job
            model_limits = self._limits_object(body["model"])
        except ProviderError as unread:
            if unread.retryable:
                unread.code = NOT_SENT
            raise
        try:
            job = self.client.fine_tuning.create(**body, model_limits=model_limits)
        except ValueError as exc:  # the SDK's own checks of the request
            raise SpecRejected(f"Together AI's client refused the job: {exc}") from None
        except Exception as exc:
            err = translate(exc, "creating the fine-tuning job", self._secrets())
            request = failed_request(exc)
            sent_create = request is None or (
                request[0] == "POST" and request[1].rstrip("/").endswith(CREATE_PATH)
            )
            if err.retryable and not sent_create:
                err.code = NOT_SENT
            raise err from None
        return convert.remote_job(_raw(job))

    def create(self, spec: JobSpec) -> RemoteJob:
        """Create the job exactly once (the shared rules of `providers.create_once`): after an
        answered failure or a lost connection the job is looked up by the uid tag in its
        suffix before a create is sent again; after a failure that got no answer no create
        is sent again (the first may still land), only lookups; a create that never left
        is simply sent again.

        Raises:
            ProviderError: refused (nothing created), or, with code ``create_unconfirmed``,
                still unknown after every attempt (the poller settles it by uid).
        """
        if not spec.ftm_job_uid:
            raise SpecRejected("the spec has no ftm_job_uid: it is needed to create safely")
        body = self.create_kwargs(spec)
        return create_exactly_once(
            lambda: self._create_once(body),
            lambda: self._find_once(spec.ftm_job_uid),
            attempts=self.config.create_attempts,
            timeout_s=self.config.timeout_s,
            sleep=self._sleep,
        )

    def _list_raw(self) -> list[dict[str, Any]]:
        page = self._once("listing fine-tuning jobs", self.client.fine_tuning.list)
        return [_raw(job) for job in page.data or []]

    def _find_once(self, ftm_job_uid: str) -> RemoteJob | None:
        for raw in self._list_raw():
            if convert.carries_uid(raw, ftm_job_uid):
                return convert.remote_job(raw, uid=ftm_job_uid)
        return None

    def find_by_uid(self, ftm_job_uid: str) -> RemoteJob | None:
        return self._retrying(
            "looking up the job by its ftm id",
            self._find_once,
            ftm_job_uid,
            _attempts=self.config.create_attempts,
        )

    def refresh(self, remote_id: str, events_cursor: str | None = None) -> Refresh:
        """The job now (one request: Together returns its events with it), only the
        events after the cursor, the metric snapshots after the last step seen (asked only
        once training may have run, and only from that step on), and the checkpoints when
        a new one was saved or the job completed."""
        raw = _raw(
            self._retrying(f"reading job {remote_id}", self.client.fine_tuning.retrieve, remote_id)
        )
        all_events = raw.get("events")
        if all_events is None:  # a service that leaves them out of the job
            all_events = [
                _raw(e)
                for e in self._retrying(
                    f"reading events of {remote_id}",
                    self.client.fine_tuning.list_events,
                    remote_id,
                ).data
                or []
            ]
            raw["events"] = all_events
        events_seen, last_step = convert.parse_cursor(events_cursor)
        start = min(events_seen, len(all_events))
        events = [
            convert.event(remote_id, index, item)
            for index, item in enumerate(all_events)
            if index >= start
        ]
        job = convert.remote_job(raw)
        metrics = []
        if raw.get("status") in convert.TRAINED_STATUSES and (
            job.total_steps is None or last_step < job.total_steps
        ):
            metrics = self.list_metrics(remote_id, after_step=last_step)
            if metrics:
                last_step = max(last_step, metrics[-1].step)
                if job.step is None or last_step > job.step:
                    job = replace(job, step=last_step)
        checkpoints = []
        if job.status == JobStatus.SUCCEEDED or any(e.type == "checkpoint_save" for e in events):
            checkpoints = self.list_checkpoints(remote_id)
        if job.status == JobStatus.SUCCEEDED and job.fine_tuned_model:
            events.append(self._not_deployed_note(job.fine_tuned_model))
        return Refresh(
            job=job,
            events=events,
            events_cursor=convert.make_cursor(len(all_events), last_step),
            metrics=metrics,
            checkpoints=checkpoints,
        )

    def list_metrics(self, remote_id: str, *, after_step: int = 0) -> list:
        """Metric points of the steps after ``after_step``, in step order."""
        page = _raw(
            self._retrying(
                f"reading metrics of {remote_id}",
                self.client.fine_tuning.list_metrics,
                remote_id,
                global_step_from=after_step + 1,
            )
        )
        points = [convert.metric(m) for m in page.get("metrics") or []]
        return sorted((p for p in points if p and p.step > after_step), key=lambda p: p.step)

    def list_checkpoints(self, remote_id: str) -> list:
        page = self._retrying(
            f"reading checkpoints of {remote_id}",
            self.client.fine_tuning.list_checkpoints,
            remote_id,
        )
        return convert.checkpoints(remote_id, [_raw(c) for c in page.data or []])

    def cancel(self, remote_id: str) -> RemoteJob:
        """Cancel. A retry after a failed attempt that the service refused (the first one
        did land: the job is already cancelling) reads the job and returns it; a job that
        had ended before is refused as usual."""
        attempts = max(1, self.config.max_retries + 1)
        for attempt in range(attempts):
            try:
                job = self._once(
                    f"cancelling job {remote_id}", self.client.fine_tuning.cancel, remote_id
                )
                return convert.remote_job(_raw(job))
            except ProviderError as err:
                if attempt and not err.retryable:
                    raw = _raw(
                        self._retrying(
                            f"reading job {remote_id}", self.client.fine_tuning.retrieve, remote_id
                        )
                    )
                    if raw.get("status") in ("cancel_requested", "cancelled"):
                        return convert.remote_job(raw)
                if not err.retryable or attempt == attempts - 1:
                    raise
                self._sleep(backoff_delay(attempt, err.retry_after_s))
        raise AssertionError("unreachable")

    def delete(self, remote_id: str) -> None:
        """Delete a job (and its stored outputs) at Together."""
        self._retrying(f"deleting job {remote_id}", self.client.fine_tuning.delete, remote_id)

    def list_remote_jobs(self, limit: int = 100) -> list[RemoteJob]:
        """Jobs at Together, newest first (for `ftm jobs import`)."""
        out = []
        for raw in self._retrying("listing fine-tuning jobs", self._list_raw)[:limit]:
            job = convert.remote_job(raw)
            hp = dict(job.hyperparameters or {})
            hp.setdefault("method", "supervised")
            out.append(replace(job, hyperparameters=hp))
        return out

    # -- models -----------------------------------------------------------------------

    def list_base_models(self) -> list[BaseModelInfo]:
        names = BASE_MODELS + (SANDBOX_MODELS if self.simulated else ())
        return [BaseModelInfo(id=m, methods=self.capabilities.methods) for m in names]

    # -- deployments: a fine-tune answers only from a dedicated endpoint ----------------

    def _is_fine_tune(self, model: str) -> bool:
        """A fine-tune ftm launched (its output name keeps ftm's uid tag), or one this
        process has deployed."""
        return model in self._endpoint_names or (
            model not in BASE_MODELS + SANDBOX_MODELS and bool(_FTM_FINE_TUNE.search(model))
        )

    def deployment_for(self, model: str) -> str | None:
        """The name of the endpoint serving a fine-tune. Together names an endpoint itself
        when it creates it, so unless this process saw it, this is one read of the
        account's endpoints (None: no endpoint serves it yet, or Together could not be
        asked). A base model answers serverless, by its own id: None."""
        if not self._is_fine_tune(model):
            return None
        if model in self._endpoint_names:
            return self._endpoint_names[model]
        try:
            found = self._retrying(
                f"looking for the endpoint of {model}", endpoints.find_for_model, self.client, model
            )
        except ProviderError:
            return None
        return str(found["name"]) if found else None

    def deployment_kind(self, model: str) -> str:
        """A fine-tune answers only from a dedicated endpoint; a base model serverless."""
        return "dedicated" if self._is_fine_tune(model) else "serverless"

    def deployment_hardware(self, model: str) -> list[HardwareOption]:
        """``GET /hardware?model=``: each configuration with its price per replica-hour
        (Together prices by the minute: ``cents_per_minute`` x 60 / 100)."""
        listed = self._retrying(
            f"listing the hardware for {model}", endpoints.hardware, self.client, model
        )
        return [endpoints.hardware_option(raw) for raw in listed]

    def deploy(
        self,
        model: str,
        *,
        wait: bool = True,
        hardware: str | None = None,
        min_replicas: int = 1,
        max_replicas: int = 1,
    ) -> Deployment:
        """The dedicated endpoint serving ``model``: the account's existing one (started
        again if stopped), else a new one on ``hardware`` (default: ``endpoint_hardware``)
        with ``min_replicas`` to ``max_replicas`` replicas, created exactly once (after a
        lost answer ftm looks before sending again: never two billed endpoints); with
        ``wait``, once it is STARTED.

        Raises:
            ProviderError: Together refused the endpoint (one line saying what to change),
                it failed to start, or it was not started after ``deploy_wait_s``.
        """
        client = self.client
        hardware = hardware or self.config.endpoint_hardware

        def find() -> dict[str, Any] | None:
            return self._once(
                f"looking for the endpoint of {model}", endpoints.find_for_model, client, model
            )

        raw = retry_idempotent(find, attempts=self.config.create_attempts, sleep=self._sleep)
        if raw is not None and str(raw.get("state")).upper() == endpoints.STOPPED_STATE:
            raw = self._retrying(
                f"starting endpoint {raw['name']}", endpoints.start, client, str(raw["id"])
            )
        elif raw is None:
            try:
                raw = create_exactly_once(
                    lambda: self._once(
                        f"creating a dedicated endpoint for {model}",
                        endpoints.create,
                        client,
                        model,
                        hardware,
                        min_replicas,
                        max_replicas,
                    ),
                    find,
                    attempts=self.config.create_attempts,
                    timeout_s=self.config.timeout_s,
                    sleep=self._sleep,
                )
            except ProviderError as err:
                raise self._deploy_refused(model, err, hardware) from None
        elif "id" in raw and "hardware" not in raw:  # the list's summary lacks it
            raw = self._retrying(
                f"reading endpoint {raw['name']}", endpoints.retrieve, client, str(raw["id"])
            )
        return self._wait_started(raw) if wait else endpoints.as_deployment(raw)

    def _endpoint_id(self, deployment: Deployment) -> str | None:
        """The endpoint's id: recorded, else looked up by its model."""
        if deployment.remote_id:
            return deployment.remote_id
        found = self._retrying(
            f"looking for the endpoint of {deployment.model}",
            endpoints.find_for_model,
            self.client,
            deployment.model,
        )
        return str(found["id"]) if found else None

    def deployment_status(self, deployment: Deployment) -> Deployment:
        """The endpoint as Together reports it now (``Deleted`` when it has none)."""
        endpoint_id = self._endpoint_id(deployment)
        raw = None
        if endpoint_id is not None:
            raw = self._retrying(
                f"reading endpoint {endpoint_id}",
                endpoints.retrieve_if_any,
                self.client,
                endpoint_id,
            )
        if raw is None:
            self._endpoint_names.pop(deployment.model, None)
            return replace(deployment, state=endpoints.GONE_STATE)
        return endpoints.as_deployment(raw)

    def stop_deployment(self, deployment: Deployment) -> Deployment:
        """``PATCH state: STOPPED``: its replicas stop and so does the bill (it can be
        started again by `deploy`)."""
        endpoint_id = self._endpoint_id(deployment)
        self._endpoint_names.pop(deployment.model, None)
        raw = None
        if endpoint_id is not None:
            raw = self._retrying(
                f"stopping endpoint {endpoint_id}", endpoints.stop, self.client, endpoint_id
            )
        if raw is None:
            return replace(deployment, state=endpoints.GONE_STATE)
        return endpoints.as_deployment(raw)

    def delete_deployment(self, deployment: Deployment) -> None:
        """``DELETE /endpoints/{id}``; one already gone is not an error."""
        endpoint_id = self._endpoint_id(deployment)
        self._endpoint_names.pop(deployment.model, None)
        if endpoint_id is not None:
            self._retrying(
                f"deleting endpoint {endpoint_id}", endpoints.delete, self.client, endpoint_id
            )

    def _not_deployed_note(self, model: str) -> JobEvent:
        """Said once the job succeeds (one id per model: stored once): unlike Azure's, a
        Together endpoint bills per minute, so ftm does not start one until it is used.
        Not one of Together's events: the events cursor ignores it."""
        return JobEvent(
            id=f"ftm:together-not-deployed:{model}",
            created_at=datetime.now(UTC),
            message=f"{model} answers only from a dedicated endpoint, billed per minute while "
            f"it runs: ftm creates one on {self.config.endpoint_hardware} on first use "
            "(ftm eval, chat), not now",
        )

    def _deploy_refused(self, model: str, err: ProviderError, hardware: str) -> ProviderError:
        if err.code == CREATE_UNCONFIRMED:
            return ProviderError(
                f"could not confirm whether Together AI created an endpoint for {model} "
                f"({err.message}); ftm looks for it before creating another: try again",
                code=CREATE_UNCONFIRMED,
                retryable=True,
            )
        if err.retryable:
            return err
        return ProviderError(
            f"{err.message.rstrip('.')}. Together AI did not deploy {model} on {hardware}: choose "
            "hardware that serves it (ftm deployments hardware MODEL lists them; the default "
            "is [providers.together] endpoint_hardware), or download the "
            "weights (`ftm jobs download`) and evaluate them locally",
            code="deployment_refused",
        )

    def _wait_started(self, raw: dict[str, Any]) -> Deployment:
        """Poll the endpoint until STARTED, sleeping through the provider's sleep (so a
        test on a frozen emulator clock advances it)."""
        deployment = endpoints.as_deployment(raw)
        waited, polls = 0.0, 0
        while not deployment.ready:
            if deployment.failed:
                raise ProviderError(
                    f"Together AI could not start endpoint {deployment.name} for "
                    f"{deployment.model} (state {raw.get('state')}); delete it at Together "
                    "(it may still bill) and try again",
                    code="deployment_failed",
                )
            if deployment.state == "STOPPED":  # stopped by someone while ftm waited
                raise ProviderError(
                    f"endpoint {deployment.name} of {deployment.model} was stopped while ftm "
                    "waited for it to start; use the model again to start it",
                    code="deployment_stopped",
                )
            if waited >= self.config.deploy_wait_s:
                raise ProviderError(
                    f"endpoint {deployment.name} of {deployment.model} is still "
                    f"{raw.get('state')} after {self.config.deploy_wait_s:.0f} s (it bills "
                    "once started); try again in a few minutes: ftm reuses it",
                    code="deployment_not_ready",
                    retryable=True,
                )
            pause = DEPLOY_POLL_S[min(polls, len(DEPLOY_POLL_S) - 1)]
            self._sleep(pause)
            waited += pause
            polls += 1
            raw = self._retrying(
                f"reading endpoint {deployment.name}",
                endpoints.retrieve,
                self.client,
                str(raw["id"]),
            )
            deployment = endpoints.as_deployment(raw)
        self._endpoint_names[deployment.model] = deployment.name
        return deployment

    def _served_name(self, model: str) -> str:
        """What chat passes as the model: a fine-tune's endpoint (deployed and waited for
        on first use), else the model itself (a base model answers serverless)."""
        if not self._is_fine_tune(model):
            return model
        with self._deploy_lock:
            if model not in self._endpoint_names:
                self.deploy(model, wait=True)
            return self._endpoint_names[model]

    def complete(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> Completion:
        """An answer from ``model``; a fine-tune's through its dedicated endpoint, which is
        created on first use (billed per minute from then on, see `launch_warnings`)."""
        served = self._served_name(model)
        started = time.perf_counter()
        response = self._retrying(
            f"asking {model}",
            self.client.chat.completions.create,
            model=served,
            messages=[{"role": m.role, "content": m.content} for m in messages],
            max_tokens=max_tokens,
            temperature=temperature,
        )
        usage = response.usage
        return Completion(
            text=response.choices[0].message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            latency_ms=(time.perf_counter() - started) * 1000,
            model=response.model,
        )

    def upstream(self, model: str, deployment: Deployment | None = None) -> Upstream | None:
        """Together's OpenAI-compatible API (the emulator's in sandbox mode) with a Bearer
        key: a fine-tune by its dedicated endpoint's name (``deployment``), a base model by
        its own id (serverless)."""
        with self._lock:
            if self._api_key is None:  # once: a key command must not run per request
                self._api_key = resolve_api_key(self.config)
            key = self._api_key
        if deployment is not None:
            base = deployment.endpoint_url or f"{self.config.endpoint}/v1"
            return Upstream(base, deployment.name, {"Authorization": f"Bearer {key}"})
        served = self._endpoint_names.get(model, model)
        return Upstream(f"{self.config.endpoint}/v1", served, {"Authorization": f"Bearer {key}"})

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
