"""Library noise stays out of the terminal: `ftm eval` on a local model (a tiny Llama and
a real PEFT adapter on it), run as a fresh process the way a user runs it, prints only
ftm's own lines; transformers' "Loading weights" bars, FutureWarnings and bitsandbytes'
kernels advice land in the log the command names."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.datasets.store import add_dataset
from providers.local import demo_data
from tests.conftest import REPO_ROOT

NOISE = ("Loading weights", "FutureWarning", "gemm_4bit", "pip install kernels", "it/s]", "%|")


def _untrained_adapter(base: Path, out: Path) -> Path:
    """A real LoRA adapter directory on ``base`` (initialised, not trained: enough to load)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    net = AutoModelForCausalLM.from_pretrained(str(base))
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    get_peft_model(net, config).save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(out))
    return out


def _bitsandbytes_warns_on_this_cpu() -> bool:
    """bitsandbytes gives its "pip install kernels" advice only on CPUs with AVX512-BF16."""
    from bitsandbytes.functional import has_avx512bf16

    return bool(has_avx512bf16())


@pytest.mark.slow
def test_ftm_eval_on_a_local_adapter_keeps_library_output_in_its_log(
    tiny_model, tmp_path, ftm_home
):
    data = demo_data.write_jsonl(tmp_path / "labels.jsonl", demo_data.labelling_examples(40, 2))
    add_dataset(data, name="labels", val_fraction=0.2, seed=1)
    adapter = _untrained_adapter(tiny_model, tmp_path / "adapter")
    args = [
        "eval",
        "--task",
        "labels",
        "--dataset",
        "labels",
        "--provider",
        "local",
        "--base",
        str(tiny_model),
        "--model",
        str(adapter),
        "--no-zero-shot",
        "--few-shot",
        "0",
        "--no-general",
        "--limit",
        "4",
        "--max-tokens",
        "4",
    ]
    out = subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=dict(os.environ),
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    terminal = out.stdout + out.stderr
    for noise in NOISE:
        assert noise not in terminal, (noise, terminal)
    assert f"evaluating {adapter} [local] on 4 examples" in out.stdout
    assert "task labels" in out.stdout  # the leaderboard, ftm's own output, is still there

    named = re.fullmatch(r"library messages: (\S+)\n", out.stderr)
    assert named, out.stderr
    log = Path(named.group(1))
    assert log.parent == ftm_home / "logs" and log.name.startswith("eval-")
    text = log.read_text()
    assert "Loading weights" in text and "FutureWarning" in text
    assert ("gemm_4bit" in text) == _bitsandbytes_warns_on_this_cpu()


def test_a_command_that_loads_nothing_leaves_no_log(ftm_home, capfd):
    import warnings

    from app.cli.quiet import library_output_to_log

    with library_output_to_log("eval") as path:
        pass
    assert not path.exists()
    with library_output_to_log("eval") as path:
        warnings.warn("a library's deprecation", FutureWarning, stacklevel=1)
        os.write(2, b"native code writing to fd 2\n")
        print("ftm's own line")
    captured = capfd.readouterr()
    assert "ftm's own line" in captured.out
    assert captured.err == f"library messages: {path}\n"
    text = path.read_text()
    assert "FutureWarning: a library's deprecation" in text and "native code" in text


@pytest.mark.slow
def test_ftm_migrate_to_a_local_model_keeps_library_output_in_its_log(
    tiny_model, tmp_path, ftm_home, monkeypatch
):
    """A sandbox fine-tune, promoted, migrated by `ftm migrate` (a fresh process) to a LoRA
    on the tiny model: training runs in the job's worker (its own worker.log), the
    evaluation loads models in the command's process; neither reaches the terminal."""
    from app import database
    from app.evaluation.service import EvalRequest, evaluate
    from app.promotion import aliases
    from app.sandbox.server import SandboxServer
    from tests.evaluation.sandbox_fixtures import BASE, train

    with SandboxServer(port=0, seconds_per_step=0.01, seed=5) as server:
        monkeypatch.setenv("FTM_OPENAI__SANDBOX", "true")
        monkeypatch.setenv("FTM_OPENAI__SANDBOX_URL", server.base_url)
        database.reset()
        engine = database.get_engine()
        data = demo_data.write_jsonl(tmp_path / "labels.jsonl", demo_data.labelling_examples(40, 1))
        add_dataset(data, name="labels", val_fraction=0.2, seed=1)
        hosted = train(engine, "labels", "labels")
        runs = evaluate(
            EvalRequest(
                task="labels",
                dataset="labels",
                provider="openai",
                base_model=BASE,
                zero_shot=False,
                few_shot=0,
                job_ids=[hosted.id],
                general=False,
                max_tokens=8,
            ),
            engine=engine,
        )
        aliases.promote(
            engine,
            task="labels",
            alias="production",
            run_id=runs[-1].id,
            who="ci",
            why="in production before the migration",
            override=True,
        )
        args = [
            "migrate",
            "--task",
            "labels",
            "--alias",
            "production",
            "--to",
            "local",
            "--model",
            str(tiny_model),
            "--method",
            "lora",
            "--epochs",
            "1",
            "--option",
            "batch_size=8",
            "--option",
            "torch_threads=2",
            "--no-promote",
            "--timeout",
            "600",
        ]
        out = subprocess.run(
            [sys.executable, "-m", "app", *args],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            env=dict(os.environ),
            timeout=900,
        )
    assert out.returncode == 0, out.stdout + out.stderr
    terminal = out.stdout + out.stderr
    for noise in NOISE:
        assert noise not in terminal, (noise, terminal)
    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"):
        assert step in out.stdout  # ftm's own progress is all there
    named = re.fullmatch(r"library messages: (\S+)\n", out.stderr)
    assert named, out.stderr
    log = Path(named.group(1))
    assert log.parent == ftm_home / "logs" and log.name.startswith("migrate-")
    assert "Loading weights" in log.read_text()


def test_the_log_is_named_on_failure_and_skipped_where_it_cannot_be_written(
    ftm_home, capfd, monkeypatch, tmp_path
):
    from app.cli.quiet import library_output_to_log

    with pytest.raises(RuntimeError), library_output_to_log("migrate") as path:
        print("loading...", file=sys.stderr)
        raise RuntimeError("out of memory")
    assert capfd.readouterr().err == f"library messages: {path}\n"
    assert "loading..." in path.read_text()

    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    monkeypatch.setenv("FTM_HOME", str(not_a_dir))
    with library_output_to_log("eval") as path:
        print("shown as it is", file=sys.stderr)
    assert path is None and capfd.readouterr().err == "shown as it is\n"
