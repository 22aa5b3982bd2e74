"""Parameter counts at their real size: a 4-bit (QLoRA) model counts as many parameters as
the model it quantizes, as transformers' own `num_parameters` says, through PEFT too."""

from __future__ import annotations

import pytest

from providers.local.model_shape import ALL_LINEAR, load_local_shape
from providers.local.precision import choose_precision
from providers.types import JobSpec
from tests.local.conftest import new_job_row
from tests.tiny import labelling_files

CPU_FP32 = choose_precision("auto", "cpu", None)


def _norm_params(shape) -> int:
    """RMSNorm weights (two per layer and a final one): real, but not in `ModelShape`."""
    return (2 * shape.num_hidden_layers + 1) * shape.hidden_size


def test_a_4bit_model_counts_the_parameters_it_holds(tiny_model):
    import torch
    from peft import get_peft_model

    from providers.local import training

    torch.set_num_threads(1)
    quantized = training.load_model(str(tiny_model), "qlora", "cpu", CPU_FP32)
    assert training._is_4bit(quantized)  # bitsandbytes NF4 on the CPU: packed storage
    plain = training.load_model(str(tiny_model), "full", "cpu", CPU_FP32)
    shape = load_local_shape(tiny_model)

    total, trainable = training._counts(quantized)
    assert total == quantized.num_parameters()  # transformers' own count of the 4-bit model
    assert total == sum(p.numel() for p in plain.parameters())  # the unquantized model
    assert total == shape.params + _norm_params(shape)  # and the shape read from config.json
    # (packed, numel() alone would say about 45% fewer)
    assert sum(p.numel() for p in quantized.parameters()) < 0.8 * total

    hp = {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"}
    wrapped = get_peft_model(quantized, training.lora_config(hp))
    total, trainable = training._counts(wrapped)
    adapter = shape.lora_params(8, ALL_LINEAR)
    assert trainable == adapter
    assert (trainable, total) == wrapped.get_nb_trainable_parameters()  # PEFT's own count
    assert total == shape.params + _norm_params(shape) + adapter


@pytest.mark.slow
def test_the_qlora_plan_reports_the_real_parameter_count(provider, tiny_model, tmp_path):
    """The trainer path: what the plan event (and the throughput sample) report."""
    from providers.local.training import build_trainer

    train, _ = labelling_files(tmp_path, n_train=8, n_validation=0)
    uid = new_job_row("counts", str(tiny_model), "qlora")
    spec = JobSpec(
        name="counts",
        base_model=str(tiny_model),
        train_path=str(train),
        validation_path=None,
        method="qlora",
        ftm_job_uid=uid,
        options={"device": "cpu", "torch_threads": 1, "r": 8},
    )
    job, _ = provider.write_job(provider.prepare(spec))
    _, plan = build_trainer(job.read_config(), [])
    shape = load_local_shape(tiny_model)
    assert plan.quantized
    assert plan.trainable_params == shape.lora_params(8, ALL_LINEAR)
    assert plan.model_params == shape.params + _norm_params(shape) + plan.trainable_params
