"""Evaluating an adapter loads its base model as it was trained: a QLoRA adapter's base in
4-bit NF4 with the training's BitsAndBytesConfig (bitsandbytes runs on the CPU), placed on
the device while it loads; the answers are the trained model's."""

from __future__ import annotations

import json

import pytest
import torch

from providers.local import demo_data
from providers.local.jobdir import JobDir
from providers.types import JobSpec, JobStatus
from tests.local.conftest import new_job_row

pytestmark = pytest.mark.slow


def _qlora_job(provider, tiny_model, tmp_path) -> JobDir:
    train = demo_data.write_jsonl(tmp_path / "train.jsonl", demo_data.labelling_examples(16))
    uid = new_job_row("t", str(tiny_model), "qlora")
    spec = JobSpec(
        name="t",
        base_model=str(tiny_model),
        train_path=str(train),
        method="qlora",
        ftm_job_uid=uid,
        options=dict(device="cpu", torch_threads=1, epochs=1, batch_size=8, learning_rate=1e-2),
    )
    job, _ = provider.write_job(provider.prepare(spec))
    return job


def test_a_qlora_adapter_is_evaluated_on_its_4bit_base_with_the_trained_models_answers(
    provider, tiny_model, tmp_path
):
    from peft import PeftModel
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    from providers.local import inference_cache
    from providers.local.inference import load
    from providers.local.precision import Precision
    from providers.local.training import BASE_LOADING_FILE, load_model
    from providers.local.worker import StopRequest, run

    job = _qlora_job(provider, tiny_model, tmp_path)
    assert run(job, StopRequest()) == JobStatus.SUCCEEDED

    # The plan event says which number formats the run used, and why.
    plan = job.read_status()["plan"]
    assert plan["precision"]["mixed"] == "no"
    assert plan["precision"]["compute_dtype"] == "float32"
    assert plan["precision"]["reason"] == "fp32 on the CPU"
    # The adapter was trained, and saved, in fp32 (trl casts QLoRA adapters to bf16).
    with safe_open(str(job.adapter / "adapter_model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float32}
    # ... and says how its base was loaded.
    loading = json.loads((job.adapter / BASE_LOADING_FILE).read_text())
    assert loading["quantization"] == {
        "load_in_4bit": True,
        "quant_type": "nf4",
        "double_quant": True,
        "compute_dtype": "float32",
    }

    prompts = [e["messages"][:-1] for e in demo_data.labelling_examples(4, seed=7)]
    inference_cache.clear()
    answers = [c.text for c in provider.complete_batch(str(job.adapter), prompts, max_tokens=6)]
    net, tok = load(str(job.adapter))
    assert net.base_model.model.is_loaded_in_4bit  # not an unquantized copy
    assert str(net.device) == "cpu"

    # The model as trained: the training loader's 4-bit base with the saved adapter.
    precision = Precision.from_dict(loading["precision"])
    trained = PeftModel.from_pretrained(
        load_model(str(tiny_model), "qlora", "cpu", precision), str(job.adapter)
    ).eval()
    unquantized = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32), str(job.adapter)
    ).eval()
    text = tok.apply_chat_template(prompts[0], tokenize=False, add_generation_prompt=True)
    ids = tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        evaluated, reference, full = (m(ids).logits for m in (net, trained, unquantized))
    assert torch.allclose(evaluated, reference, atol=1e-5)
    assert not torch.allclose(evaluated, full, atol=1e-3)  # 4-bit is not the fp32 base

    enc = tok(
        [tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts],
        return_tensors="pt",
        padding=True,
        add_special_tokens=False,
    )
    with torch.no_grad():
        out = trained.generate(
            **enc, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id
        )
    expected = []
    for row in out[:, enc["input_ids"].shape[1] :]:
        eos = (row == tok.eos_token_id).nonzero()
        row = row[: int(eos[0])] if len(eos) else row
        expected.append(tok.decode(row, skip_special_tokens=True).strip())
    assert answers == expected
    inference_cache.clear()


def test_an_adapter_without_a_loading_record_keeps_the_plain_base(provider, tiny_model, tmp_path):
    # Adapters from older jobs or other tools: the base in this device's dtype, unquantized.
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from providers.local import inference_cache
    from providers.local.inference import load

    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    adapter = tmp_path / "foreign-adapter"
    get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj"])).save_pretrained(adapter)
    inference_cache.clear()
    net, _ = load(str(adapter))
    assert not getattr(net.base_model.model, "is_loaded_in_4bit", False)
    assert net.base_model.model.dtype == torch.float32
    inference_cache.clear()
