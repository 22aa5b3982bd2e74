"""Plausible, deterministic training curves for emulated jobs.

Loss decays exponentially toward a floor with a little noise; token accuracy rises as the
loss falls. Each value depends only on (job seed, step, total steps), so a job's events,
checkpoints and result file always agree and are the same on every run.
"""

from __future__ import annotations

import math
import random

RESULT_CSV_COLUMNS = (
    "step",
    "train_loss",
    "train_accuracy",
    "valid_loss",
    "valid_mean_token_accuracy",
)


def _accuracy(loss: float) -> float:
    return round(min(0.999, max(0.0, 1.0 - loss / 2.8)), 5)


def step_metrics(
    seed: int, step: int, total_steps: int, *, steps_per_epoch: int, has_validation: bool
) -> dict[str, float | int]:
    """The metrics reported for one step: what a metrics event's ``data`` carries.

    Validation metrics appear every ``total_steps // 20`` steps (and on the last step);
    full-validation metrics at the end of each epoch. Both only with a validation file.
    """
    rng = random.Random(f"{seed}:{step}")
    progress = step / max(1, total_steps)
    train_loss = (
        0.08 + 2.3 * math.exp(-4.0 * progress) + rng.uniform(-0.12, 0.12) * (1.0 - 0.6 * progress)
    )
    train_loss = round(max(0.01, train_loss), 5)
    data: dict[str, float | int] = {
        "step": step,
        "total_steps": total_steps,
        "train_loss": train_loss,
        "train_mean_token_accuracy": _accuracy(train_loss),
    }
    if has_validation:
        valid_every = max(1, total_steps // 20)
        if step % valid_every == 0 or step == total_steps:
            valid_loss = round(max(0.01, train_loss * 1.12 + rng.uniform(0.0, 0.08)), 5)
            data["valid_loss"] = valid_loss
            data["valid_mean_token_accuracy"] = _accuracy(valid_loss)
        if step % steps_per_epoch == 0:
            full = round(max(0.01, 0.1 + 2.3 * math.exp(-3.6 * progress) + 0.05), 5)
            data["full_valid_loss"] = full
            data["full_valid_mean_token_accuracy"] = _accuracy(full)
    return data


def step_message(data: dict[str, float | int]) -> str:
    """The event message the real service writes for a metrics event."""
    message = f"Step {data['step']}/{data['total_steps']}: training loss={data['train_loss']:.2f}"
    if "valid_loss" in data:
        message += f", validation loss={data['valid_loss']:.2f}"
    if "full_valid_loss" in data:
        message += f", full validation loss={data['full_valid_loss']:.2f}"
    return message


def result_csv(rows: list[dict[str, float | int]]) -> str:
    """The job's result file: one line per step; validation cells empty where not measured."""
    lines = [",".join(RESULT_CSV_COLUMNS)]
    for data in rows:
        cells = [
            str(data["step"]),
            f"{data['train_loss']:.5f}",
            f"{data['train_mean_token_accuracy']:.5f}",
            f"{data['valid_loss']:.5f}" if "valid_loss" in data else "",
            f"{data['valid_mean_token_accuracy']:.5f}"
            if "valid_mean_token_accuracy" in data
            else "",
        ]
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"
