"""The local OpenAI-compatible server, as `LocalProvider.deploy` starts it: one real
subprocess per base model serving two PEFT adapters on the tiny base, called with the
openai SDK over HTTP. Each adapter answers as in-process evaluation of that adapter
does, streams token by token, and stopping the last deployment ends the process.

One server for the module (it takes seconds to start); the tests run in file order.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from providers.chat_stream import sse_payloads
from providers.errors import ProviderError
from providers.local import LocalProvider
from providers.local.serving.plan import choose_backend, plan_for, vllm_command
from providers.local.serving.server_dir import ServerDir
from providers.types import Deployment

QUESTION = [{"role": "user", "content": "What is the weather like today?"}]


def _random_adapter(base: Path, out: Path, seed: int) -> str:
    """A LoRA adapter with random (not zero) weights: it changes the base's answers, each
    seed its own way, with no training."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    net = AutoModelForCausalLM.from_pretrained(str(base))
    config = LoraConfig(
        r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM"
    )
    get_peft_model(net, config).save_pretrained(str(out))
    return str(out)


@pytest.fixture(scope="module")
def setup(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("serving")
    provider = LocalProvider(jobs_dir=root / "jobs", python=sys.executable, server_threads=1)
    adapters = [
        _random_adapter(tiny_model, root / "jobs" / name / "adapter", seed)
        for name, seed in (("first", 1), ("second", 2))
    ]
    state: dict = {"provider": provider, "adapters": adapters, "deployments": []}
    yield state
    for server in (root / "servers").glob("*"):  # whatever a failed test left running
        ServerDir(server).signal_worker(9)


def _client(deployment: Deployment) -> openai.OpenAI:
    return openai.OpenAI(base_url=deployment.endpoint_url, api_key="unused", max_retries=0)


def test_two_adapters_on_one_server_answer_as_evaluation_does(setup):
    from providers.local import inference_cache
    from providers.local.inference import complete_batch

    provider, adapters = setup["provider"], setup["adapters"]
    first = provider.deploy(adapters[0], hardware="cpu")
    second = provider.deploy(adapters[1])
    setup["deployments"] = [first, second]
    assert first.ready and second.ready and first.name != second.name
    assert first.remote_id == second.remote_id and first.endpoint_url == second.endpoint_url
    assert first.endpoint_url.startswith("http://127.0.0.1:") and first.hardware == "cpu"
    client = _client(first)
    names = {m.id for m in client.models.list()}
    assert {first.name, second.name} < names  # and the base
    for deployment, adapter in zip((first, second), adapters, strict=True):
        answer = client.chat.completions.create(
            model=deployment.name, messages=QUESTION, max_tokens=12
        )
        expected = complete_batch(adapter, [QUESTION], max_tokens=12)[0]
        inference_cache.clear()
        assert answer.choices[0].message.content == expected.text  # that adapter answered
        setup.setdefault("expected", {})[deployment.name] = expected.text
        assert answer.model == deployment.name
        assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (
            expected.prompt_tokens,
            expected.completion_tokens,
        )
    texts = {
        client.chat.completions.create(model=d.name, messages=QUESTION, max_tokens=12)
        .choices[0]
        .message.content
        for d in (first, second)
    }
    assert len(texts) == 2  # the adapters answer differently
    assert provider.upstream(adapters[0], first).base_url == first.endpoint_url
    assert provider.upstream(adapters[0], first).model == first.name


def test_concurrent_requests_each_get_their_own_adapter(setup):
    from concurrent.futures import ThreadPoolExecutor

    first, second = setup["deployments"]
    client = _client(first)
    names = [first.name, second.name] * 4

    def ask(name: str) -> str:
        answer = client.chat.completions.create(model=name, messages=QUESTION, max_tokens=12)
        return answer.choices[0].message.content

    with ThreadPoolExecutor(len(names)) as pool:
        answers = list(pool.map(ask, names))
    assert answers == [setup["expected"][name] for name in names]


def test_the_first_words_arrive_while_the_rest_is_generated(setup):
    import time

    first = setup["deployments"][0]
    stream = _client(first).chat.completions.create(
        model=first.name,
        messages=QUESTION,
        max_tokens=150,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    started = time.perf_counter()
    arrivals = [time.perf_counter() for c in stream if c.choices and c.choices[0].delta.content]
    ended = time.perf_counter()
    # Generated in one piece and then cut up, every word would arrive at the end.
    assert arrivals[0] - started < 0.5 * (ended - started), (started, arrivals[0], ended)


def test_streaming_sends_words_as_they_are_generated_then_usage(setup):
    first = setup["deployments"][0]
    client = _client(first)
    ask = dict(model=first.name, messages=QUESTION, max_tokens=12, extra_body={"ignore_eos": True})
    whole = client.chat.completions.create(**ask)
    chunks = list(
        client.chat.completions.create(**ask, stream=True, stream_options={"include_usage": True})
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    contents = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(contents) >= 3  # word by word, not the answer in one piece
    assert "".join(contents) == whole.choices[0].message.content
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12
    assert chunks[-1].usage == whole.usage
    # On the wire: server-sent events ending with [DONE].
    raw = httpx.post(
        f"{first.endpoint_url}/chat/completions",
        json={"model": first.name, "messages": QUESTION, "max_tokens": 4, "stream": True},
        timeout=60,
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert sse_payloads(raw.text)[-1] == "[DONE]" and raw.text.endswith("data: [DONE]\n\n")


def test_deploying_again_reuses_the_running_server(setup):
    provider, adapters = setup["provider"], setup["adapters"]
    first = setup["deployments"][0]
    pid = ServerDir(Path(first.remote_id)).read_pid()
    again = provider.deploy(adapters[0])
    assert again == first
    assert ServerDir(Path(first.remote_id)).read_pid() == pid
    assert provider.deployment_status(first).state == "Succeeded"
    health = httpx.get(first.endpoint_url.removesuffix("/v1") + "/health", timeout=10).json()
    assert health["status"] == "ok" and health["backend"] == "transformers"
    log = ServerDir(Path(first.remote_id)).log_path.read_text()
    assert "with transformers (vLLM needs a CUDA device" in log.splitlines()[0]  # which, and why
    assert sorted(health["adapters"]) == sorted(d.name for d in setup["deployments"])
    with pytest.raises(openai.NotFoundError, match="serves:"):
        _client(first).chat.completions.create(model="nobody", messages=QUESTION)


def test_stopping_removes_an_adapter_and_the_last_stops_the_server(setup):
    provider = setup["provider"]
    first, second = setup["deployments"]
    server = ServerDir(Path(first.remote_id))
    assert provider.stop_deployment(first).state == "Stopped"
    assert provider.deployment_status(first).state == "Stopped"
    assert provider.deployment_status(second).state == "Succeeded"
    client = _client(second)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=first.name, messages=QUESTION, max_tokens=2)
    assert client.chat.completions.create(model=second.name, messages=QUESTION, max_tokens=2)
    assert server.worker_alive()
    provider.delete_deployment(second)
    assert not server.worker_alive()
    assert not server.path.exists()  # forgotten with its last deployment
    assert provider.deployment_status(second).state == "Stopped"


def test_a_server_that_cannot_load_is_reported_with_its_log(setup, tmp_path):
    adapter = Path(_random_adapter_config(tmp_path / "orphan" / "adapter"))
    with pytest.raises(ProviderError, match="exited before it was ready") as caught:
        setup["provider"].deploy(str(adapter))
    assert "/no/such/base" in str(caught.value).split("server.log", 1)[1]  # the log's tail


def test_a_server_not_ready_in_time_is_stopped_and_reported(setup, tiny_model):
    from providers.local.serving.manager import LocalServers

    provider = setup["provider"]
    servers = LocalServers(
        provider.jobs_dir.parent / "servers", sys.executable, ready_timeout_s=0.5
    )
    with pytest.raises(ProviderError, match="not ready within 0.5 s and was stopped") as caught:
        servers.deploy(str(tiny_model), "cpu", wait=True)  # the base itself: its own server
    server = ServerDir(servers.root / plan_for(str(tiny_model)).server_key)
    assert "ftm: serving" in str(caught.value).split("server.log", 1)[1]  # the log's tail
    assert not server.worker_alive()


def _random_adapter_config(out: Path) -> str:
    """An adapter directory whose base does not exist: the server cannot load it."""
    import json

    out.mkdir(parents=True)
    config = {"base_model_name_or_path": "/no/such/base", "peft_type": "LORA", "r": 4}
    (out / "adapter_config.json").write_text(json.dumps(config))
    return str(out)


# -- pure decisions -------------------------------------------------------------------------


def test_vllm_is_chosen_only_with_cuda_and_the_package():
    assert choose_backend("cuda:0", True)[0] == "vllm"
    assert choose_backend("cuda:0", False)[0] == "transformers"
    assert choose_backend("cpu", True)[0] == "transformers"


def test_the_vllm_command_serves_every_adapter_as_a_lora_module():
    command = vllm_command(
        "meta-llama/Llama-3.2-1B-Instruct",
        "llama",
        {"a-1": "/jobs/a/adapter", "b-2": "/jobs/b/adapter"},
        ranks=[8, 24],
        port=8123,
    )
    assert command[:3] == ["vllm", "serve", "meta-llama/Llama-3.2-1B-Instruct"]
    assert command[command.index("--port") + 1] == "8123"
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert "--enable-lora" in command
    assert command[command.index("--max-lora-rank") + 1] == "32"  # fits rank 24
    at = command.index("--lora-modules")
    assert command[at + 1 : at + 3] == ["a-1=/jobs/a/adapter", "b-2=/jobs/b/adapter"]


def test_adapters_of_one_base_share_a_server_and_names_are_stable(tmp_path):
    import json

    for name in ("x", "y"):
        (tmp_path / name / "adapter").mkdir(parents=True)
        (tmp_path / name / "adapter" / "adapter_config.json").write_text(
            json.dumps({"base_model_name_or_path": "org/base"})
        )
    x, y = (plan_for(str(tmp_path / n / "adapter")) for n in ("x", "y"))
    assert x.server_key == y.server_key and x.name != y.name
    assert x.name.startswith("x-") and plan_for(str(tmp_path / "x" / "adapter")) == x
    (tmp_path / "y" / "adapter" / "ftm_base_loading.json").write_text('{"dtype": "float32"}')
    assert plan_for(str(tmp_path / "y" / "adapter")).server_key != x.server_key


def test_unknown_hardware_and_replicas_are_refused_before_anything_starts(tmp_path):
    provider = LocalProvider(jobs_dir=tmp_path / "jobs", python=sys.executable)
    assert provider.deployment_kind("any") == "local"
    assert "cpu" in [option.id for option in provider.deployment_hardware("any")]
    with pytest.raises(ProviderError, match="no hardware 'cuda:7' on this machine; choose one of"):
        provider.deploy("org/base", hardware="cuda:7")
    with pytest.raises(ProviderError, match="one replica"):
        provider.deploy("org/base", min_replicas=2, max_replicas=2)
    assert not (tmp_path / "servers").exists()
    assert provider.upstream("org/base", None) is None
