"""One training-memory estimate: the local provider refuses with the figure `ftm estimate`
and the launch estimate print, byte for byte, and every fix the refusal names works.

The refusals here are real: a config.json of the model's shape, the real LocalProvider, the
machine's real available RAM (jobs forced onto the CPU, so a GPU machine refuses alike).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli.main import cli
from app.costs.launch import estimate_for_launch
from providers.errors import SpecRejected
from providers.local import LocalProvider, demo_data, hardware
from providers.types import JobSpec
from tests.costs.conftest import chat_examples

# meta-llama/Llama-3.1-70B's config.json (the fields the estimate reads).
LLAMA_70B = dict(
    hidden_size=8192,
    num_hidden_layers=80,
    num_attention_heads=64,
    num_key_value_heads=8,
    intermediate_size=28672,
    vocab_size=128256,
    tie_word_embeddings=False,
)


def model_dir(tmp_path: Path, name: str, config: dict) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps(config))
    return d


def spec(tmp_path: Path, base: Path, method: str, **options) -> JobSpec:
    train = tmp_path / "train.jsonl"
    if not train.exists():
        demo_data.write_jsonl(train, demo_data.labelling_examples(8))
    return JobSpec(
        name="t",
        base_model=str(base),
        train_path=str(train),
        method=method,
        ftm_job_uid="u1",
        options={"device": "cpu", **options},
    )


def refusal(provider: LocalProvider, job: JobSpec) -> str:
    with pytest.raises(SpecRejected) as exc:
        provider.create(job)
    assert exc.value.code == "insufficient_memory" or "will not fit" in exc.value.message
    return exc.value.message


def test_the_refusal_prints_the_estimates_figure_byte_for_byte(tmp_path, make_dataset):
    ds = make_dataset("tickets", chat_examples(40))
    base = model_dir(tmp_path, "llama-70b", LLAMA_70B)
    provider = LocalProvider(jobs_dir=tmp_path / "jobs", database_url="")
    # The local defaults on a CPU: batch_size 8, max_seq_len 1024, no checkpointing.
    message = refusal(provider, spec(tmp_path, base, "full"))
    figure = re.search(r"estimated (.+?\)) per device", message).group(1)

    out = CliRunner().invoke(
        cli,
        [
            "estimate",
            "tickets",
            "--provider",
            "local",
            "--model",
            str(base),
            "--method",
            "full",
            "--gpu",
            "cpu",
            "--seq-len",
            "1024",
            "--batch",
            "8",
            "--no-checkpointing",
            "--json",
        ],
        catch_exceptions=False,
    )
    assert out.exit_code == 0, out.output
    memory = json.loads(out.output)["options"][1]["training"]["memory"]
    assert memory["text"] == figure
    text = (
        CliRunner()
        .invoke(
            cli,
            [
                "estimate",
                "tickets",
                "--provider",
                "local",
                "--model",
                str(base),
                "--method",
                "full",
                "--gpu",
                "cpu",
                "--seq-len",
                "1024",
                "--batch",
                "8",
                "--no-checkpointing",
            ],
            env={"COLUMNS": "400"},
            catch_exceptions=False,
        )
        .output
    )
    assert f"{figure} per device" in text

    # The launch estimate (what the wizard and `ftm launch` show first) has the same bytes.
    launch = estimate_for_launch(
        dataset_id=ds.id,
        provider="local",
        base_model=str(base),
        method="full",
        options={"device": "cpu"},
        gpu="cpu",
    )
    assert launch.peak_memory_bytes == memory["total"]
    # ... and the launch wizard's preview writes it as the refusal does.
    from app.tui.screens.launch_backend import preview_from_estimate

    shown = dict(preview_from_estimate(launch).lines)["GPU memory"]
    assert figure.startswith(f"{shown} (")


def _shape_of(params: float) -> dict:
    """A Llama-style config of about ``params`` parameters (hidden 2048, 32k vocabulary)."""
    d, ff, vocab = 2048, 8192, 32000
    per_layer = 4 * d * d + 3 * d * ff
    layers = max(1, round((params - 2 * vocab * d) / per_layer))
    return dict(
        hidden_size=d,
        intermediate_size=ff,
        num_hidden_layers=layers,
        num_attention_heads=16,
        num_key_value_heads=16,
        vocab_size=vocab,
        tie_word_embeddings=False,
    )


FIX = re.compile(r"method (\w+)|option (\w+)=(\w+)")


def _fixes(message: str) -> list[tuple[str, str]]:
    found = FIX.findall(message.split("per device against", 1)[1])
    return [("method", m[0]) if m[0] else (m[1], m[2]) for m in found]


def _apply(job: JobSpec, fix: tuple[str, str]) -> JobSpec:
    name, value = fix
    if name == "method":
        return replace(job, method=value)
    return replace(job, options={**job.options, name: value})


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        # Full fine-tuning twice the RAM's size: LoRA's frozen weights fit (ram / 2).
        ("full", ["method", "skip_memory_check"]),
        # LoRA with 64 rows of 4,096 tokens a step: the logits need ~2.5x the RAM; fewer rows,
        # shorter rows or recomputed activations fit.
        ("logits", ["batch_size", "max_seq_len", "skip_memory_check"]),
    ],
)
def test_every_fix_the_refusal_names_works(tmp_path, case, expected):
    ram = hardware.available_ram_bytes()
    provider = LocalProvider(jobs_dir=tmp_path / "jobs", database_url="")
    if case == "full":
        base = model_dir(tmp_path, "m", _shape_of(ram / 8))  # full: 16 bytes a parameter
        job = spec(tmp_path, base, "full", batch_size=1, max_seq_len=256)
    else:
        base = model_dir(tmp_path, "m", _shape_of(ram / 40))  # LoRA on a CPU: fp32 weights
        seq = 4096
        batch = int(2.5 * ram / (seq * 32000 * 10))
        job = spec(
            tmp_path, base, "lora", batch_size=batch, max_seq_len=seq, gradient_checkpointing=True
        )
    message = refusal(provider, job)
    fixes = _fixes(message)
    assert [name for name, _ in fixes] == expected, message
    for fix in fixes:
        fixed = _apply(job, fix)
        assert provider.memory_check(fixed) is not None, fix  # no SpecRejected
        assert not provider.validate_spec(fixed), fix


@pytest.mark.parametrize("seq_len", [1, 128, 129, 4096])
def test_suggested_changes_are_each_verified_at_any_sequence_length(seq_len):
    from providers.local import memory
    from providers.local.model_shape import shape_from_config

    shape = shape_from_config(LLAMA_70B, "llama-70b", "test")
    setup = memory.TrainingSetup(method="lora", seq_len=seq_len, micro_batch=1)
    available = 144e9  # under LoRA's bf16 weights and adapter state alone
    assert memory.estimate_training_memory(shape, setup).total > available
    changes = memory.changes_that_fit(shape, setup, available)
    assert changes[0] == {"method": "qlora"}
    for change in changes:
        fixed = replace(setup, **change)
        assert memory.estimate_training_memory(shape, fixed).total <= available, change


def test_cpu_processes_of_a_multi_process_run_share_the_ram(tmp_path):
    """`n_gpus=N device=cpu` runs N processes, each with its own replica in the same RAM:
    a LoRA job that fits once (fp32 weights ~ 0.6 of the RAM) is refused as two processes,
    with the fix that makes it fit per process."""
    ram = hardware.available_ram_bytes()
    provider = LocalProvider(jobs_dir=tmp_path / "jobs", database_url="")
    base = model_dir(tmp_path, "m", _shape_of(0.6 * ram / 4))
    one = spec(tmp_path, base, "lora", batch_size=1, max_seq_len=128)
    assert provider.memory_check(one) is not None  # fits as one process
    two = spec(tmp_path, base, "lora", batch_size=1, max_seq_len=128, n_gpus=2)
    message = refusal(provider, two)
    assert "per process x 2 processes against" in message
