"""Measured training throughput, counted the way the estimate counts: the sample that
calibrates later time estimates (``ThroughputSample``).

What a sample measures (so that estimate and measurement describe the same thing):
- time: only training steps, each timed from ``on_step_begin`` to ``on_step_end`` (the
  forward, backward and optimizer step of every micro-batch of the step; on CUDA
  synchronised at both ends, since kernels run asynchronously). Evaluation, checkpoint
  saves, logging, model loading and the first ``WARMUP_STEPS`` step(s) of each attempt
  (allocator growth, kernel selection, lazy initialisation) are not in it. The step's
  batches are fetched just before ``on_step_begin``, so data loading is outside too.
- tokens: what the estimator's ``training_tokens`` counts as trained: without packing,
  every position of each micro-batch as padded to its longest row; with packing, the real
  tokens (trl packs without padding). A forward pre-hook on the model counts them, only
  for training forwards (grad enabled, train mode): evaluation and DPO's reference pass
  are not training tokens. The job's ``trained_tokens`` stay the trainer's count of real
  (non-padding) tokens, the figure billed and shown.
- per device: tokens are summed over ranks (one all-reduce at the end of training) and
  divided by the world size, so a sample is one GPU's rate, comparable with one GPU's
  peak whatever the number of GPUs; ``world_size`` is recorded beside it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

WARMUP_STEPS = 1
"""Steps at the start of each attempt left out of the timing (when there are more)."""


@dataclass
class StepLog:
    """What one rank saw, step by step (tokens summed over ranks once training ends)."""

    seconds: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    """Per step, the tokens the estimator counts as trained."""
    real_tokens: int = 0
    """Non-padding tokens over all steps (for the packed context)."""
    padded_lengths: float = 0.0
    """Sum over micro-batches of the padded row length (for the unpacked context)."""
    micro_batches: int = 0
    epochs: float = 0.0
    """Epochs trained in this attempt."""


@dataclass(frozen=True)
class Throughput:
    tokens_per_second: float
    """Per device: tokens over all ranks / world size / timed seconds."""
    train_seconds: float
    """The timed steps' seconds (warm-up left out)."""
    tokens: int
    """Tokens over all ranks in the timed steps."""
    timed_steps: int
    warmup_steps: int
    world_size: int


def per_device_throughput(
    step_seconds: list[float],
    step_tokens: list[int],
    world_size: int,
    warmup: int = WARMUP_STEPS,
) -> Throughput:
    """One device's tokens/s from each step's seconds and tokens (summed over ranks).

    The first ``warmup`` steps are left out when later steps remain; a run of no more
    steps than that is timed whole (a biased sample beats none).
    """
    if len(step_seconds) != len(step_tokens):
        raise ValueError(f"{len(step_seconds)} step times but {len(step_tokens)} token counts")
    skip = warmup if len(step_seconds) > warmup else 0
    seconds = float(sum(step_seconds[skip:]))
    tokens = int(sum(step_tokens[skip:]))
    world = max(1, int(world_size))
    tps = tokens / world / seconds if seconds > 0 else 0.0
    return Throughput(tps, seconds, tokens, len(step_seconds) - skip, skip, world)


def estimator_context(log: StepLog, *, packing: bool, max_seq_len: int) -> float:
    """The attention context s as `app.costs.local_time.training_tokens` defines it:
    without packing the mean padded micro-batch length; with packing the packed length
    (``max_seq_len``, or all the real tokens of an epoch when there are fewer)."""
    if packing:
        per_epoch = log.real_tokens / log.epochs if log.epochs > 0 else float(log.real_tokens)
        return float(min(max_seq_len, per_epoch)) if per_epoch > 0 else float(max_seq_len)
    if log.micro_batches == 0:
        return float(max_seq_len)
    return log.padded_lengths / log.micro_batches


def make_step_timer(packing: bool):
    """A TrainerCallback timing training steps and counting their tokens into ``.log``
    (see the module docstring for what is and is not counted)."""
    import torch
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.log = StepLog()
            self._hook = None
            self._cuda = False
            self._started: float | None = None
            self._step_tokens = 0
            self._epoch0 = 0.0

        def _count(self, module, args, kwargs) -> None:
            if not (module.training and torch.is_grad_enabled()):
                return
            ids = kwargs.get("input_ids", args[0] if args else None)
            if ids is None:
                return
            mask = kwargs.get("attention_mask")
            real = int(mask.sum()) if mask is not None else ids.numel()
            self._step_tokens += real if packing else ids.numel()
            self.log.real_tokens += real
            self.log.padded_lengths += ids.shape[-1]
            self.log.micro_batches += 1

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self._cuda = args.device.type == "cuda"
            self._epoch0 = float(state.epoch or 0.0)
            if model is not None and self._hook is None:
                self._hook = model.register_forward_pre_hook(self._count, with_kwargs=True)

        def on_step_begin(self, args, state, control, **kwargs):
            if self._cuda:
                torch.cuda.synchronize()
            self._step_tokens = 0
            self._started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if self._started is None:
                return
            if self._cuda:
                torch.cuda.synchronize()
            self.log.seconds.append(time.perf_counter() - self._started)
            self.log.tokens.append(self._step_tokens)
            self._started = None

        def on_train_end(self, args, state, control, **kwargs):
            if self._hook is not None:
                self._hook.remove()
                self._hook = None
            self.log.epochs = float(state.epoch or 0.0) - self._epoch0
            self.log.tokens = _summed_over_ranks(self.log.tokens, args.device)

    return StepTimer()


def _summed_over_ranks(values: list[int], device) -> list[int]:
    """``values`` summed element-wise over the ranks of a distributed run (every rank
    calls this at the end of training, with as many steps as the others)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [int(v) for v in t.tolist()]
