"""Real training on the tiny model: every method, the artifacts, and what they learned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from app.database import get_engine
from db.engine import read_session
from db.models import Artifact, Checkpoint, JobEvent, MetricPoint, ThroughputSample
from providers.local import demo_data
from providers.local.jobdir import JobDir
from providers.types import JobSpec, JobStatus
from tests.local.conftest import job_row, launch, new_job_row, wait_terminal
from tests.tiny import HELD_OUT_START, labelling_files

pytestmark = pytest.mark.slow


def _exact_match(model: str, examples: list[dict]) -> float:
    from providers.local.inference import complete_batch

    outs = complete_batch(model, [e["messages"][:-1] for e in examples], max_tokens=6)
    gold = [e["messages"][-1]["content"] for e in examples]
    return sum(o.text == g for o, g in zip(outs, gold, strict=True)) / len(gold)


def test_lora_job_trains_in_a_worker_reports_progress_and_beats_the_base_model(
    provider, tiny_model, tmp_path
):
    train, val = labelling_files(tmp_path)
    uid, remote = launch(
        provider,
        tiny_model,
        train,
        val,
        "lora",
        epochs=10,
        learning_rate=3e-3,
        batch_size=8,
        eval_steps=12,
        early_stopping_patience=0,
    )
    assert remote.status == JobStatus.QUEUED
    final = wait_terminal(provider, remote.remote_id)
    assert final.status == JobStatus.SUCCEEDED, final.error
    job_dir = JobDir(Path(remote.remote_id))

    row = job_row(uid, "succeeded")
    assert row.status == "succeeded"
    assert row.step == row.total_steps == 120
    # The database names them under the storage root (the home here), not by this path.
    assert row.job_dir == f"jobs/{uid}" and job_dir.path.name == uid and row.worker_pid
    assert row.fine_tuned_model == f"jobs/{uid}/adapter"
    with read_session(get_engine()) as s:
        points = s.scalars(
            select(MetricPoint).where(MetricPoint.job_id == row.id).order_by(MetricPoint.step)
        ).all()
        evals = [p.eval_loss for p in points if p.eval_loss is not None]
        assert len(evals) >= 5 and evals[-1] < evals[0] - 0.2  # eval loss falls
        assert any(p.learning_rate for p in points) and any(p.grad_norm for p in points)
        assert any(p.tokens_per_second for p in points)
        assert s.scalars(select(Checkpoint).where(Checkpoint.job_id == row.id)).all()
        kinds = {a.kind for a in s.scalars(select(Artifact).where(Artifact.job_id == row.id))}
        assert kinds == {"adapter"}
        messages = [e.message for e in s.scalars(select(JobEvent).where(JobEvent.job_id == row.id))]
        assert any("assistant tokens" in m for m in messages)  # loss masked to the answers
        sample = s.scalars(select(ThroughputSample).where(ThroughputSample.job_id == row.id)).one()
        assert sample.hardware.startswith("cpu:") and sample.method == "lora"
        assert sample.tokens_per_second > 0 and sample.achieved_flops_per_s > 0

    # vLLM-style adapter layout, loadable with PEFT.
    assert (job_dir.adapter / "adapter_config.json").is_file()
    assert (job_dir.adapter / "adapter_model.safetensors").is_file()

    held_out = demo_data.labelling_examples(24, seed=1, start=HELD_OUT_START)
    base_acc = _exact_match(str(tiny_model), held_out)
    tuned_acc = _exact_match(str(job_dir.adapter), held_out)
    assert tuned_acc > base_acc
    assert tuned_acc >= 0.6


def test_adapter_loads_with_peft_and_the_merged_model_matches_it(provider, tiny_model, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from providers.local.merge import merge_adapter
    from providers.local.worker import StopRequest, run

    train, _ = labelling_files(tmp_path, n_train=32)
    job = _in_process_job(provider, tiny_model, train, None, "lora", epochs=2, learning_rate=5e-3)
    assert run(job, StopRequest()) == JobStatus.SUCCEEDED

    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    with_adapter = PeftModel.from_pretrained(base, str(job.adapter)).eval()
    merged_dir = merge_adapter(job.path, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    tok = AutoTokenizer.from_pretrained(merged_dir)
    assert tok.chat_template  # the chat template travels with the merged model
    text = tok.apply_chat_template(
        demo_data.labelling_examples(1, 3)[0]["messages"], tokenize=False
    )
    ids = tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        a = with_adapter(ids).logits
        b = merged(ids).logits
        plain = AutoModelForCausalLM.from_pretrained(tiny_model)(ids).logits
    assert torch.allclose(a, b, atol=1e-4)
    assert not torch.allclose(a, plain, atol=1e-3)  # the adapter changed something

    # The same on request from the CLI, by job uid.
    from click.testing import CliRunner

    from app.cli.main import cli

    result = CliRunner().invoke(cli, ["local", "merge", job.path.name])
    assert result.exit_code == 0, result.output
    assert (job.merged / "model.safetensors").is_file()
    again = AutoModelForCausalLM.from_pretrained(job.merged).eval()
    with torch.no_grad():
        assert torch.allclose(again(ids).logits, a, atol=1e-4)


def _in_process_job(provider, tiny_model, train, val, method, **options) -> JobDir:
    """A job directory written by the provider, to run with `worker.run` in this process."""
    uid = new_job_row("test", str(tiny_model), method)
    options.setdefault("torch_threads", 2)
    options.setdefault("device", "cpu")  # these tests assert CPU behaviour, GPU or not
    spec = JobSpec(
        name="t",
        base_model=str(tiny_model),
        train_path=str(train),
        validation_path=str(val) if val else None,
        method=method,
        ftm_job_uid=uid,
        options=options,
    )
    job, _ = provider.write_job(provider.prepare(spec))
    return job


def _eval_losses(job: JobDir) -> list[float]:
    state = json.loads((job.last_checkpoint() / "trainer_state.json").read_text())
    return [h["eval_loss"] for h in state["log_history"] if "eval_loss" in h]


def test_qlora_trains_a_4bit_model_on_the_cpu(provider, tiny_model, tmp_path):
    from providers.local.worker import StopRequest, run

    train, val = labelling_files(tmp_path, n_train=48, n_validation=12)
    job = _in_process_job(
        provider,
        tiny_model,
        train,
        val,
        "qlora",
        epochs=3,
        learning_rate=5e-3,
        eval_steps=6,
        merge=True,
    )
    assert run(job, StopRequest()) == JobStatus.SUCCEEDED
    status = job.read_status()
    assert status["plan"]["quantized_4bit"] is True  # bitsandbytes NF4 on the CPU
    assert status["plan"]["liger_kernel"] is False  # auto: Liger needs CUDA
    assert status["plan"]["world_size"] == 1
    losses = _eval_losses(job)
    assert losses[-1] < losses[0]
    assert (job.adapter / "adapter_model.safetensors").is_file()
    # merge=true: the adapter merged into the unquantized base, as a plain model directory
    assert {a["kind"] for a in status["artifacts"]} == {"adapter", "merged"}
    assert (job.merged / "model.safetensors").is_file()


def test_early_stopping_ends_training_when_eval_loss_stops_improving(
    provider, tiny_model, tmp_path
):
    from providers.local.worker import StopRequest, run

    train, val = labelling_files(tmp_path, n_train=16, n_validation=8)
    job = _in_process_job(
        provider,
        tiny_model,
        train,
        val,
        "full",
        epochs=40,
        learning_rate=2e-2,
        batch_size=4,
        eval_steps=2,
        early_stopping_patience=1,
    )
    assert run(job, StopRequest()) == JobStatus.SUCCEEDED
    status = job.read_status()
    assert status["step"] < status["total_steps"] == 160  # stopped early
    losses = _eval_losses(job)
    # Patience 1: it stopped at the first evaluation that did not beat the best before it,
    # and every evaluation before that one did improve on its predecessor.
    assert len(losses) >= 2 and status["step"] == 2 * len(losses)
    assert losses[-1] >= min(losses[:-1])
    assert all(b < a for a, b in zip(losses[:-2], losses[1:-1], strict=True)), losses


def test_full_fine_tuning_with_packing_saves_a_complete_model(provider, tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM

    from providers.local.worker import StopRequest, run

    train, val = labelling_files(tmp_path, n_train=48, n_validation=12)
    job = _in_process_job(
        provider,
        tiny_model,
        train,
        val,
        "full",
        epochs=2,
        learning_rate=1e-3,
        eval_steps=2,
        packing=True,
        max_seq_len=128,
        batch_size=2,
    )
    assert run(job, StopRequest()) == JobStatus.SUCCEEDED
    losses = _eval_losses(job)
    assert losses[-1] < losses[0]
    assert (
        job.read_status()["plan"]["trainable_params"] == job.read_status()["plan"]["model_params"]
    )
    model = AutoModelForCausalLM.from_pretrained(job.model)
    assert model.config.num_hidden_layers == 2


def test_dpo_on_a_tiny_preference_set_raises_the_preferred_answers_margin(
    provider, tiny_model, tmp_path
):
    import torch

    from providers.local.inference import load
    from providers.local.worker import StopRequest, run

    rows = demo_data.preference_examples(48, seed=1)
    train = demo_data.write_jsonl(tmp_path / "prefs.jsonl", rows)
    job = _in_process_job(provider, tiny_model, train, None, "dpo", epochs=3, learning_rate=5e-3)
    assert run(job, StopRequest()) == JobStatus.SUCCEEDED
    assert (job.adapter / "adapter_config.json").is_file()

    def margin(model: str) -> float:
        net, tok = load(model)
        total = 0.0
        for r in rows[:12]:
            prompt = tok.apply_chat_template(
                r["input"]["messages"], tokenize=False, add_generation_prompt=True
            )
            scores = []
            for out in (r["preferred_output"], r["non_preferred_output"]):
                ids = tok(
                    prompt + out[0]["content"], return_tensors="pt", add_special_tokens=False
                )["input_ids"]
                n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
                with torch.no_grad():
                    logp = torch.log_softmax(net(ids).logits[0, :-1].float(), -1)
                tgt = ids[0, 1:]
                scores.append(logp[torch.arange(len(tgt)), tgt][n_prompt - 1 :].sum().item())
            total += scores[0] - scores[1]
        return total / 12

    assert margin(str(job.adapter)) > margin(str(tiny_model)) + 5.0
