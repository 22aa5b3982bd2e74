"""Each hosted provider's `Provider.upstream`, used by the gateway's own forwarding
(`app.gateway.forward.post`) against that provider's emulator over real HTTP: the URL,
the auth header and the query parameters are the ones the service accepts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from app.gateway import forward
from app.gateway.errors import GatewayError
from app.sandbox.azure.server import AzureSandboxServer
from app.sandbox.together.server import TogetherSandboxServer
from providers.azure import AzureConfig, AzureOpenAIProvider
from providers.together.config import TogetherConfig
from providers.together.provider import TogetherProvider
from providers.types import Deployment

BODY = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}


def forwarded(upstream, provider: str) -> dict:
    async def send() -> bytes:
        async with httpx.AsyncClient() as client:
            content, _ = await forward.post(client, upstream, {"model": "t:a", **BODY}, provider)
            return content

    return json.loads(asyncio.run(send()))


def test_azure_forwards_to_the_deployment_url_with_api_version_and_api_key(
    tmp_path: Path,
) -> None:
    with AzureSandboxServer(port=0, data_dir=tmp_path / "azure") as server:
        config = AzureConfig(endpoint=server.endpoint, api_key=server.api_key)
        upstream = AzureOpenAIProvider(config).upstream("gpt-4o-mini-2024-07-18")
        assert upstream.base_url.endswith("/openai/deployments/gpt-4o-mini-2024-07-18")
        assert forwarded(upstream, "azure")["choices"][0]["message"]["content"]
        wrong = AzureOpenAIProvider(AzureConfig(endpoint=server.endpoint, api_key="0" * 32))
        with pytest.raises(GatewayError) as refused:  # the resource refuses the key: 502
            forwarded(wrong.upstream("gpt-4o-mini-2024-07-18"), "azure")
        assert refused.value.status == 502 and "0" * 32 not in refused.value.message


def test_together_forwards_a_base_model_by_id_and_a_fine_tune_by_its_endpoint(
    tmp_path: Path,
) -> None:
    with TogetherSandboxServer(port=0, data_dir=tmp_path / "together") as server:
        provider = TogetherProvider(
            TogetherConfig(sandbox=True, sandbox_url=server.base_url, api_key=server.api_key)
        )
        base = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
        upstream = provider.upstream(base)
        assert upstream.model == base and upstream.headers["Authorization"].startswith("Bearer ")
        assert forwarded(upstream, "together")["choices"][0]["message"]["content"]
        endpoint = Deployment(name="acct/ft-endpoint-1", model="acct/ft-model", state="Succeeded")
        assert provider.upstream("acct/ft-model", endpoint).model == "acct/ft-endpoint-1"
