"""The local provider's contract without training: options, refusals, memory, launch line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from providers.errors import SpecRejected
from providers.local import LocalProvider, demo_data, memory, options
from providers.local.jobdir import JobDir
from providers.local.model_shape import shape_from_config
from providers.registry import discover
from providers.types import Hyperparameters, JobSpec


def _spec(tmp_path: Path, base: str = "/nonexistent", method: str = "lora", **opts) -> JobSpec:
    train = demo_data.write_jsonl(tmp_path / "train.jsonl", demo_data.labelling_examples(8))
    return JobSpec(
        name="t",
        base_model=base,
        train_path=str(train),
        method=method,
        ftm_job_uid="u1",
        options=opts,
    )


def _llama_dir(tmp_path: Path, name: str, **cfg) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg))
    return d


LLAMA_8B = dict(
    hidden_size=4096,
    num_hidden_layers=32,
    vocab_size=128256,
    intermediate_size=14336,
    num_attention_heads=32,
    num_key_value_heads=8,
)
LLAMA_70B = dict(
    hidden_size=8192,
    num_hidden_layers=80,
    vocab_size=128256,
    intermediate_size=28672,
    num_attention_heads=64,
    num_key_value_heads=8,
)


def test_registered_and_importable_without_the_training_stack():
    assert discover().get("local") is LocalProvider
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import providers.local, sys; "
            "print(any(m in sys.modules for m in ('torch', 'transformers', 'trl', 'peft')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == "False"


def test_defaults_and_overrides(tmp_path):
    hp = options.resolve_hyperparameters(_spec(tmp_path))
    assert (hp["r"], hp["alpha"], hp["target_modules"], hp["learning_rate"]) == (
        16,
        32,
        "all-linear",
        2e-4,
    )
    spec = JobSpec(
        name="t",
        base_model="x",
        train_path="t",
        method="full",
        ftm_job_uid="u",
        hyperparameters=Hyperparameters(n_epochs=5, batch_size=2, learning_rate_multiplier=2.0),
        seed=7,
        options={"packing": "true", "scheduler": "linear"},
    )
    hp = options.resolve_hyperparameters(spec)
    assert (hp["epochs"], hp["batch_size"], hp["seed"], hp["packing"]) == (5, 2, 7, True)
    assert hp["learning_rate"] == pytest.approx(4e-5)
    assert hp["method"] == hp["tuning"] == "full"
    assert {o.name for o in LocalProvider.options} >= {
        "r",
        "alpha",
        "dropout",
        "target_modules",
        "learning_rate",
        "epochs",
        "batch_size",
        "grad_accum",
        "warmup_ratio",
        "scheduler",
        "max_seq_len",
        "gradient_checkpointing",
        "seed",
        "packing",
        "early_stopping_patience",
    }


@pytest.mark.parametrize(
    ("opts", "method", "message"),
    [
        ({"rank": 4}, "lora", "unknown local option"),
        ({"r": "big"}, "lora", "option r='big': expected int"),
        ({"scheduler": "zigzag"}, "lora", "choose one of"),
        ({"dropout": 1.5}, "lora", "dropout"),
        ({}, "reinforce", "method 'reinforce' is not available locally"),
    ],
)
def test_bad_options_are_refused_with_a_clear_message(tmp_path, opts, method, message):
    with pytest.raises(SpecRejected, match=message):
        options.resolve_hyperparameters(_spec(tmp_path, method=method, **opts))


def test_validate_spec_names_bad_files_and_models(tmp_path):
    p = LocalProvider(jobs_dir=tmp_path / "jobs", database_url="")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n')
    spec = JobSpec(
        name="t", base_model=str(tmp_path / "missing"), train_path=str(bad), ftm_job_uid="u"
    )
    problems = p.validate_spec(spec)
    assert any("no such directory" in m for m in problems)
    assert any(f"{bad}:2: not valid JSON" in m for m in problems)
    with pytest.raises(SpecRejected):
        p.prepare(spec)
    prefs = _spec(tmp_path, base="org/model", method="dpo")
    assert any("not a preference example" in m for m in p.validate_spec(prefs))


def test_memory_estimate_matches_published_figures():
    shape = shape_from_config(LLAMA_8B, "llama-8b", "test")
    assert 7.5e9 < shape.params < 8.5e9

    def est(method: str) -> float:
        setup = memory.TrainingSetup(method=method, seq_len=512, micro_batch=1)
        return memory.estimate_training_memory(shape, setup).total / memory.GB

    # Published 8B peaks: QLoRA ~6 GB, LoRA 16-22 GB, full ~120 GB (tests/costs: within 20%).
    assert 5 < est("qlora") < 10
    assert 16 < est("lora") < 24
    assert 100 < est("full") < 150
    big = shape_from_config(LLAMA_70B, "llama-70b", "test")
    q70 = memory.estimate_training_memory(big, memory.TrainingSetup(seq_len=512)).total / memory.GB
    assert 40 < q70 < 60


def test_a_job_that_cannot_fit_is_refused_before_it_starts(tmp_path):
    base = _llama_dir(tmp_path, "llama-70b", **LLAMA_70B)
    p = LocalProvider(jobs_dir=tmp_path / "jobs", database_url="")
    spec = _spec(tmp_path, base=str(base), method="full", device="cpu")
    assert any("will not fit" in m for m in p.validate_spec(spec))  # launch refuses it early
    with pytest.raises(SpecRejected, match=r"will not fit: estimated \d+.*GB.*against") as exc:
        p.create(spec)
    assert exc.value.code == "insufficient_memory"
    assert not (tmp_path / "jobs" / "u1" / "worker.pid").exists()  # nothing was started


def test_more_than_one_gpu_goes_through_accelerate_launch(tmp_path):
    p = LocalProvider(jobs_dir=tmp_path, database_url="", python="/usr/bin/python3")
    job = JobDir(tmp_path / "j")
    cmd = p.worker_command(job, n_gpus=4)
    assert cmd[:3] == ["/usr/bin/python3", "-m", "accelerate.commands.launch"]
    assert cmd[cmd.index("--num_processes") + 1] == "4"
    assert cmd[-3:] == ["-m", "providers.local.worker", str(job.path)]
    assert p.worker_command(job, 1) == [
        "/usr/bin/python3",
        "-m",
        "providers.local.worker",
        str(job.path),
    ]


def test_more_gpus_than_the_machine_has_are_refused(tmp_path):
    p = LocalProvider(jobs_dir=tmp_path / "jobs", database_url="")
    problems = p.validate_spec(_spec(tmp_path, base="org/model", n_gpus=64))
    assert any("n_gpus=64: this machine has" in m for m in problems)


def test_refresh_of_an_unknown_job_dir_is_a_clear_error(tmp_path):
    from providers.errors import ProviderError

    with pytest.raises(ProviderError, match="no such job directory"):
        LocalProvider(jobs_dir=tmp_path).refresh(str(tmp_path / "nope"))
