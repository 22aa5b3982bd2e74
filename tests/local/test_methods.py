"""DoRA, IA3 and prefix tuning on the tiny model: each trains a few steps, saves a PEFT
adapter that the evaluation path loads, beats its base on the examples it trained on,
trains exactly the parameters the memory estimate counts, and merges where PEFT can."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from providers.errors import SpecRejected
from providers.local import demo_data
from providers.local.jobdir import JobDir
from providers.local.memory import TrainingSetup, estimate_training_memory
from providers.local.model_shape import load_local_shape
from providers.types import JobSpec, JobStatus
from tests.local.conftest import new_job_row
from tests.tiny import labelling_files

N_TRAIN = 16


def _job(provider, tiny_model: Path, train: Path, method: str, **options) -> JobDir:
    uid = new_job_row("methods", str(tiny_model), method)
    options = {"torch_threads": 1, "device": "cpu", "batch_size": 8, **options}
    spec = JobSpec(
        name="methods",
        base_model=str(tiny_model),
        train_path=str(train),
        method=method,
        ftm_job_uid=uid,
        options=options,
    )
    job, _ = provider.write_job(provider.prepare(spec))
    return job


def _mean_loss(model_ref: str, examples: list[dict]) -> float:
    """Mean loss of ``model_ref`` (loaded by the evaluation path) on the assistant replies
    of ``examples``: the tokens training is scored on."""
    import torch

    from providers.local.inference import load, prompt_text

    net, tok = load(model_ref)
    losses = []
    for ex in examples:
        prompt = prompt_text(tok, ex["messages"][:-1])
        text = tok.apply_chat_template(ex["messages"], tokenize=False)
        ids = tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
        labels = ids.clone()
        labels[:, :n_prompt] = -100
        with torch.no_grad():
            losses.append(float(net(input_ids=ids, labels=labels).loss))
    return sum(losses) / len(losses)


# (method, options, what the adapter_config says, whether PEFT can merge it)
CASES = [
    ("dora", {"learning_rate": 5e-3, "epochs": 2}, "LORA", True),
    ("ia3", {"learning_rate": 5e-2, "epochs": 2}, "IA3", True),
    (
        "prefix",
        {"learning_rate": 5e-2, "epochs": 8, "num_virtual_tokens": 4},
        "PREFIX_TUNING",
        False,
    ),
]


@pytest.mark.parametrize(("method", "options", "peft_type", "mergeable"), CASES)
def test_method_trains_saves_loads_and_beats_its_base(
    provider, tiny_model, tmp_path, method, options, peft_type, mergeable
):
    from providers.local.inference import complete_batch
    from providers.local.merge import MergeError, merge_adapter
    from providers.local.worker import StopRequest, run

    train, _ = labelling_files(tmp_path, n_train=N_TRAIN, n_validation=1)
    if mergeable:
        options = {**options, "merge": True}
    job = _job(provider, tiny_model, train, method, **options)
    assert run(job, StopRequest()) == JobStatus.SUCCEEDED, job.read_status()
    status = job.read_status()

    adapter_config = json.loads((job.adapter / "adapter_config.json").read_text())
    assert adapter_config["peft_type"] == peft_type
    assert adapter_config.get("use_dora", False) is (method == "dora")

    # The trained parameters are the ones `ftm estimate` and the refusal count.
    shape = load_local_shape(tiny_model)
    setup = TrainingSetup(
        method=method,
        device="cpu",
        num_virtual_tokens=options.get("num_virtual_tokens", 20),
    )
    assert (
        status["plan"]["trainable_params"]
        == estimate_training_memory(shape, setup).trainable_params
    )

    examples = demo_data.labelling_examples(N_TRAIN, seed=1)
    assert _mean_loss(str(job.adapter), examples) < _mean_loss(str(tiny_model), examples)
    # Evaluation generates through the same loading (prefix tuning extends the KV cache).
    outs = complete_batch(
        str(job.adapter), [e["messages"][:-1] for e in examples[:2]], max_tokens=3
    )
    assert all(o.text for o in outs)
    kinds = {a["kind"] for a in status["artifacts"]}
    assert kinds == ({"adapter", "merged"} if mergeable else {"adapter"})
    if not mergeable:  # `ftm local merge` on it says why not
        with pytest.raises(MergeError, match="prefix tuning cannot be merged"):
            merge_adapter(job.path, tmp_path / "merged")


def test_prefix_merge_is_refused_with_the_reason(provider, tiny_model, tmp_path):
    train, _ = labelling_files(tmp_path, n_train=4, n_validation=1)
    with pytest.raises(SpecRejected, match="prefix tuning cannot be merged"):
        _job(provider, tiny_model, train, "prefix", merge=True)


def _model_dir(path: Path, model_type: str, **config) -> Path:
    """A model directory whose config.json says ``model_type`` (only the config is read
    when methods are decided)."""
    path.mkdir(parents=True)
    config = {
        "model_type": model_type,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "vocab_size": 100,
        **config,
    }
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.mark.parametrize(
    ("model_type", "config", "refused"),
    [
        ("gpt2", {}, {"ia3": "Llama layout"}),
        ("mamba", {}, {"ia3": "Llama layout", "prefix": "past_key_values"}),
        ("llama", {"use_cache": False}, {"prefix": "past_key_values"}),
    ],
)
def test_a_method_the_base_model_cannot_take_is_refused_and_not_listed(
    provider, tmp_path, ftm_home, model_type, config, refused
):
    from providers.local.options import METHODS

    train, _ = labelling_files(tmp_path, n_train=4, n_validation=1)
    base = _model_dir(ftm_home / "models" / model_type, model_type, **config)
    for method in ("lora", "dora", "ia3", "prefix"):
        spec = JobSpec(name="m", base_model=str(base), train_path=str(train), method=method)
        problems = [p for p in provider.validate_spec(spec) if f"method {method}" in p]
        if method in refused:
            (problem,) = problems
            assert refused[method] in problem and "use lora or dora" in problem, problem
        else:
            assert problems == []
    # The wizard offers what the listing says the model supports.
    (info,) = [m for m in provider.list_base_models() if m.id == str(base)]
    assert info.methods == tuple(m for m in METHODS if m not in refused)


@pytest.mark.parametrize("method", ["dora", "ia3", "prefix"])
def test_a_jobs_recipe_migrates_to_the_same_method(method):
    from providers.local.recipe import recipe_from_local_job, translate_for_local

    reported = {"method": method, "tuning": method, "r": 8, "epochs": 2, "learning_rate": 1e-3}
    translation = translate_for_local(recipe_from_local_job(method, reported, None))
    assert translation.method == method
    assert translation.lines[0].note == "same training"
    # LoRA's rank carries to DoRA only: IA3 and prefix tuning have none
    assert ("r" in translation.options) is (method == "dora")


@pytest.mark.parametrize(
    ("method", "option", "words"),
    [
        ("ia3", {"r": 8}, "the rank applies to LoRA/QLoRA/DoRA"),
        ("prefix", {"target_modules": "q_proj"}, "prefix tuning adds tokens"),
        ("lora", {"num_virtual_tokens": 8}, "prefix tuning only"),
        ("prefix", {"gradient_checkpointing": True}, "as a KV cache"),
    ],
)
def test_an_option_the_method_would_ignore_is_refused(method, option, words):
    from providers.local.options import resolve_hyperparameters

    spec = JobSpec(name="m", base_model="x", train_path="t", method=method, options=option)
    with pytest.raises(SpecRejected, match=words):
        resolve_hyperparameters(spec)
    spec = JobSpec(name="m", base_model="x", train_path="t", method="dora", options={"r": 8})
    assert resolve_hyperparameters(spec)["r"] == 8


def test_only_plain_lora_adapters_share_a_bases_vllm_server(tmp_path):
    from providers.local.serving.plan import plan_for, vllm_can_serve

    configs = {
        "lora": {"peft_type": "LORA"},
        "dora": {"peft_type": "LORA", "use_dora": True},
        "ia3": {"peft_type": "IA3"},
        "prefix": {"peft_type": "PREFIX_TUNING"},
    }
    plans = {}
    for name, config in configs.items():
        adapter = tmp_path / name / "adapter"
        adapter.mkdir(parents=True)
        config = {"base_model_name_or_path": "org/base", **config}
        (adapter / "adapter_config.json").write_text(json.dumps(config))
        assert vllm_can_serve(adapter) is (name == "lora")
        plans[name] = plan_for(str(adapter))
    # vLLM would refuse DoRA, IA3 and prefix adapters: they go to a transformers server
    # of their own (one per method: a PeftModel holds adapters of one method), never to
    # the base's vLLM one
    assert len({p.server_key for p in plans.values()}) == 4
