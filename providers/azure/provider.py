"""The Azure OpenAI provider: the OpenAI provider's fine-tuning (uploads, create-once,
polling, events, checkpoints) over Azure's data plane, plus what Azure adds:

- its own settings (`AzureSettings`: endpoint, api-version, key variable, deployments),
- the SDK's ``AzureOpenAI`` client (``api-key`` header, ``api-version`` query,
  ``/openai/...`` paths, deployment names for inference),
- its own lifecycle (lifecycle.toml: Azure keeps training after OpenAI's cutoff),
- the deployment step: a fine-tuned model answers only once a deployment of it exists and
  is ready (created when the job succeeds, or on first use); `complete` goes through it,
- errors that name Azure and say what to change (a wrong key, a wrong api-version).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import BaseModel

from providers.azure import config as azure_config
from providers.azure.config import AzureConfig, AzureSettings, deployment_name
from providers.azure.deployments import DeploymentClient
from providers.azure.lifecycle import AzureLifecycle, load_lifecycle
from providers.azure.prices import azure_price_table
from providers.base import ProviderContext
from providers.errors import ConfigurationError, ProviderError
from providers.openai.config import OpenAIConfig
from providers.openai.provider import OpenAIProvider
from providers.openai.uploads import UploadCache
from providers.pricing import PriceTable
from providers.types import (
    BaseModelInfo,
    ChatMessage,
    Completion,
    Deployment,
    HardwareOption,
    JobEvent,
    JobSpec,
    JobStatus,
    Refresh,
    Upstream,
)

DEPLOY_POLL_S = 2.0
HOURS_PER_MONTH = 24 * 365.25 / 12


class AzureOpenAIProvider(OpenAIProvider):
    """Azure OpenAI fine-tuning: a bridge past OpenAI's job-creation cutoff."""

    name = "azure"
    display_name = "Azure OpenAI"
    settings_model: ClassVar[type[BaseModel]] = AzureSettings
    settings_alias: ClassVar[str | None] = None

    @classmethod
    def from_config(cls, config: BaseModel, context: ProviderContext) -> AzureOpenAIProvider:
        """Its config from `AzureSettings`; uploads cached in ftm's database like OpenAI's
        (keyed by endpoint, so the two never share a file id)."""
        from providers.openai.uploads import SqlUploadCache

        assert isinstance(config, AzureSettings)
        cache = SqlUploadCache(context.engine()) if context.engine else None
        return cls(AzureConfig.from_settings(config), upload_cache=cache)

    def __init__(
        self,
        config: AzureConfig | None = None,
        *,
        upload_cache: UploadCache | None = None,
        client: Any = None,
        deployments: DeploymentClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Cheap: nothing is read or connected until the first call."""
        self.azure = config or AzureConfig()
        # The inherited plumbing (retries, create-once, file waits, the upload cache's
        # endpoint key) reads these from an OpenAIConfig.
        super().__init__(
            OpenAIConfig(
                azure_endpoint=self.azure.sandbox_url
                if self.azure.sandbox
                else self.azure.endpoint,
                azure_api_version=self.azure.api_version,
                timeout_s=self.azure.timeout_s,
                max_retries=self.azure.max_retries,
                create_attempts=self.azure.create_attempts,
                file_wait_s=self.azure.file_wait_s,
                api_key=self.azure.api_key,
            ),
            upload_cache=upload_cache,
            client=client,
            sleep=sleep,
        )
        self.simulated = self.azure.sandbox
        self._token: str | None = None
        self.deployments = deployments or DeploymentClient(self.azure, self._management_token)
        self._ready: set[str] = set()
        """Deployments seen ready: calls through them need no control-plane read."""

    # -- plumbing ---------------------------------------------------------------------

    def _resolve_api_key(self) -> str:
        return azure_config.resolve_api_key(self.azure)

    def _build_client(self) -> Any:
        assert self._api_key is not None
        return azure_config.build_client(self.azure, self._api_key)

    def _management_token(self) -> str:
        if self._token is None:
            self._token = azure_config.resolve_management_token(self.azure)
        return self._token

    def _secrets(self) -> list[str | None]:
        return [*super()._secrets(), self.azure.api_key, self._token, self.azure.management_token]

    def _once(self, action: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One call; Azure's refusals of the credentials or of the URL (a wrong key, an
        unknown api-version or endpoint) become one line saying which setting to fix."""
        try:
            return super()._once(action, fn, *args, **kwargs)
        except ProviderError as err:
            raise self._explained(err) from None

    def _explained(self, err: ProviderError) -> ProviderError:
        where = self.config.endpoint
        if err.code in ("401", "http_401"):
            return ConfigurationError(
                f"{err.message}. Check the key: set {self.azure.api_key_env} to a key of the "
                f"resource at {where} (Keys and Endpoint in the Azure portal)",
                code="invalid_api_key",
            )
        if err.code == "404" or "API version not supported" in err.message:
            return ConfigurationError(
                f"{err.message}. Azure answers this when the api-version "
                f"({self.azure.api_version!r}) or the endpoint ({where}) is wrong: check "
                "[providers.azure] api_version and endpoint in the ftm config",
                code="azure_resource_not_found",
            )
        return err

    # -- data and launch ----------------------------------------------------------------

    @classmethod
    def lifecycle(cls) -> AzureLifecycle:  # type: ignore[override]
        # A sibling of OpenAI's `Lifecycle` (both are the contract's ProviderLifecycle):
        # Azure inherits OpenAI's plumbing, not its dates.
        """Azure's own dates (lifecycle.toml): the last day each base model trains, the
        day its deployments stop serving."""
        return load_lifecycle()

    def list_base_models(self) -> list[BaseModelInfo]:
        return list(self.lifecycle().models)

    @classmethod
    def pricing(cls) -> PriceTable:
        """OpenAI's per-token prices for Azure's base models, with each deployment's
        hourly hosting fee (prices.toml)."""
        return azure_price_table()

    @classmethod
    def contract_harness(cls) -> str:
        """The Azure-shaped sandbox emulator (with ftm's emulators, in app/sandbox)."""
        return "app.sandbox.azure.harness:azure_contract_harness"

    def validate_spec(self, spec: JobSpec) -> list[str]:
        problems = super().validate_spec(spec)
        declared = self.lifecycle()
        base = declared.base_model(spec.base_model)
        if base not in declared.training_until:
            problems.append(
                f"{spec.base_model} cannot be fine-tuned on Azure OpenAI (fine-tunable: "
                f"{', '.join(m.id for m in declared.models)})"
            )
        return problems

    def launch_warnings(self, spec: JobSpec) -> list[str]:
        """The hosting fee the fine-tuned model's deployment will cost. (Each base model's
        last training day is declared in `lifecycle`, which ftm words itself.)"""
        price = self.pricing().models.get(self.lifecycle().base_model(spec.base_model))
        rate = (price.hosting_per_hour if price else None) or 0.0
        when = "as soon as the job succeeds" if self.azure.auto_deploy else "on first use"
        return [
            f"the fine-tuned model answers only from a deployment, which ftm creates {when}: "
            f"hosting is billed about ${rate:.2f}/hour (${rate * HOURS_PER_MONTH:,.0f}/month) while it "
            "exists, used or not; delete it in the Azure portal when done"
        ]

    # -- jobs ---------------------------------------------------------------------------

    def refresh(self, remote_id: str, events_cursor: str | None = None) -> Refresh:
        """As OpenAI's, and once the job has succeeded, its deployment is requested (with
        ``auto_deploy``): created once, by a name derived from the model, not waited for.
        The request is reported as an event; if it fails the job still succeeded, the
        event says why and `complete` tries again on first use."""
        refreshed = super().refresh(remote_id, events_cursor)
        model = refreshed.job.fine_tuned_model
        if refreshed.job.status != JobStatus.SUCCEEDED or not model or not self.azure.auto_deploy:
            return refreshed
        name = self.deployment_for(model)
        try:
            deployment = self.deploy(model, wait=False)
        except ProviderError as err:
            note = JobEvent(
                id=f"ftm-azure-deploy-failed-{name}",
                created_at=datetime.now(UTC),
                level="warn",
                message=f"could not deploy {model} as {name}: {err.message}. It is deployed "
                "on first use instead.",
            )
        else:
            note = JobEvent(
                id=f"ftm-azure-deploy-{name}",
                created_at=datetime.now(UTC),
                message=f"deployment {name} of {model} requested ({deployment.state}): the "
                "model answers through it once it is ready; hosting is billed per hour while "
                "it exists",
            )
        # The events cursor stays the service's own: ftm's note is not one of its events.
        return replace(refreshed, events=[*refreshed.events, note])

    # -- deployments and inference ------------------------------------------------------

    def deployment_for(self, model: str) -> str:
        """A fine-tuned model's deployment is ftm's (named from the model); a base model's
        is the user's (``base_deployments``, else named like the model)."""
        if model.startswith("ft:") or ".ft-" in model:
            return deployment_name(model, self.azure.deployment_prefix)
        return dict(self.azure.base_deployments).get(model, model)

    def _is_fine_tune(self, model: str) -> bool:
        return model.startswith("ft:") or ".ft-" in model

    def hosting_per_hour(self, model: str) -> float | None:
        """The declared hourly fee of a fine-tune's deployment (prices.toml), for one unit
        of the configured capacity."""
        base = self.lifecycle().base_model(model)
        price = self.pricing().models.get(base)
        return price.hosting_per_hour if price is not None else None

    def deployment_kind(self, model: str) -> str:
        """A fine-tune answers only from its deployment, billed by the hour; a base model
        answers from the user's deployment, per token."""
        return "dedicated" if self._is_fine_tune(model) else "serverless"

    def deployment_hardware(self, model: str) -> list[HardwareOption]:
        """Azure takes no hardware, only a SKU and capacity (the settings'): one option,
        at the declared hosting fee. No network."""
        fee = self.hosting_per_hour(model)
        sku, capacity = self.azure.deployment_sku, self.azure.deployment_capacity
        return [
            HardwareOption(
                id=sku,
                description=f"{sku} SKU, capacity {capacity} (deployment_sku, "
                "deployment_capacity in [providers.azure])",
                usd_per_hour=fee,
            )
        ]

    def deploy(
        self,
        model: str,
        *,
        wait: bool = True,
        hardware: str | None = None,
        min_replicas: int = 1,
        max_replicas: int = 1,
    ) -> Deployment:
        """The deployment ``model`` answers from, created once by ftm's name for it (PUT
        is create-or-update by name); with ``wait``, once it has provisioned. ``hardware``
        and replicas do not apply: Azure takes the configured SKU and capacity."""
        name = self.deployment_for(model)
        found = self._retrying(
            f"reading deployment {name}",
            self.deployments.get,
            name,
            _attempts=self.azure.create_attempts,
        )
        if found is None:
            # PUT is create-or-update by name: repeating it after a lost answer is safe.
            found = self._retrying(
                f"deploying {model}",
                self.deployments.put,
                name,
                model,
                _attempts=self.azure.create_attempts,
            )
        deployment = self._wait_ready(found) if wait else found
        return self._priced(deployment)

    def _priced(self, deployment: Deployment) -> Deployment:
        """With what it runs on and its hourly fee (a base model's: per token, none)."""
        fine_tune = self._is_fine_tune(deployment.model)
        return replace(
            deployment,
            hardware=self.azure.deployment_sku,
            usd_per_hour=self.hosting_per_hour(deployment.model) if fine_tune else None,
        )

    def deployment_status(self, deployment: Deployment) -> Deployment:
        """``properties.provisioningState`` of its deployment (``Deleted`` when none)."""
        name = self.deployment_for(deployment.model)
        found = self._retrying(f"reading deployment {name}", self.deployments.get, name)
        if found is None:
            self._ready.discard(name)
            return replace(deployment, state="Deleted")
        return self._priced(found)

    def stop_deployment(self, deployment: Deployment) -> Deployment:
        """Azure cannot stop a deployment, only delete it: the hourly fee ends with it, and
        `deploy` creates it again."""
        self.delete_deployment(deployment)
        return replace(deployment, state="Deleted")

    def delete_deployment(self, deployment: Deployment) -> None:
        name = self.deployment_for(deployment.model)
        self._ready.discard(name)
        self._retrying(f"deleting deployment {name}", self.deployments.delete, name)

    def _wait_ready(self, deployment: Deployment) -> Deployment:
        deadline = time.monotonic() + self.azure.deploy_wait_s
        while not deployment.ready:
            if deployment.failed:
                raise ProviderError(
                    f"Azure OpenAI could not deploy {deployment.model} as {deployment.name} "
                    f"(state {deployment.state}); see the deployment in the Azure portal, "
                    "delete it and try again",
                    code="deployment_failed",
                )
            if time.monotonic() > deadline:
                raise ProviderError(
                    f"deployment {deployment.name} of {deployment.model} is still "
                    f"{deployment.state} after {self.azure.deploy_wait_s:.0f} s; try again in "
                    "a few minutes",
                    code="deployment_not_ready",
                    retryable=True,
                )
            self._sleep(DEPLOY_POLL_S)
            again = self._retrying(
                f"reading deployment {deployment.name}",
                self.deployments.get,
                deployment.name,
            )
            if again is None:
                raise ProviderError(
                    f"deployment {deployment.name} of {deployment.model} disappeared while "
                    "ftm waited for it; deploy it again",
                    code="deployment_missing",
                )
            deployment = again
        self._ready.add(deployment.name)
        return deployment

    def complete(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> Completion:
        """Through ``model``'s deployment: a fine-tuned model's is created or waited for
        first; a base model's must exist (``base_deployments``)."""
        name = self.deployment_for(model)
        if name not in self._ready and self._is_fine_tune(model):
            self.deploy(model, wait=True)
        return super().complete(name, messages, max_tokens=max_tokens, temperature=temperature)

    def upstream(self, model: str, deployment: Deployment | None = None) -> Upstream | None:
        """The deployment's data-plane URL (``{endpoint}/openai/deployments/{name}``) with
        the configured api-version and the resource's ``api-key``, as `complete` calls it."""
        name = deployment.name if deployment is not None else self.deployment_for(model)
        return Upstream(
            f"{self.azure.data_endpoint}/openai/deployments/{name}",
            name,
            {"api-key": self._upstream_key()},
            {"api-version": self.azure.api_version},
        )

    def configured(self) -> bool:
        """An Azure resource must be named (or the sandbox chosen) before anything works."""
        return self.azure.sandbox or bool(self.azure.endpoint)

    def model_endpoint(self, *, simulated: bool = False) -> str | None:
        """The resource's data plane; the model is called by its deployment name
        (`deployment_for`) with the configured api-version."""
        if simulated or self.azure.sandbox:
            return f"{self.azure.sandbox_url.rstrip('/')}/openai"
        return f"{self.azure.endpoint.rstrip('/')}/openai" if self.azure.endpoint else None

    def close(self) -> None:
        super().close()
        self.deployments.close()
