"""Training health: overfitting, instability, plateau and schedule findings from the
metrics every provider reports (train and eval loss, learning rate, grad norm).

The detectors are pure functions over ``(step, value)`` series. Each is causal: a finding
at step ``s`` depends only on points up to ``s``, so re-running detection on a longer
series finds the same findings again, and each is recorded once as a job event keyed on
its kind, reason and step (`record_health`). Findings are job events of type ``health``
whose ``data`` is ``{kind, step, evidence}``: `ftm jobs show`, `ftm watch` and the TUI
read them from there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import mean, median
from typing import Any

from sqlmodel import Session, col, func, select

from app.settings import HealthSettings
from db import repository
from db.models import Job, JobEvent, MetricPoint

Series = Sequence[tuple[int, float]]
KINDS = ("overfitting", "instability", "plateau", "schedule")
EVENT_TYPE = "health"
DECAYING_SCHEDULES = {"linear", "cosine", "cosine_with_restarts", "polynomial"}
CONSTANT_SCHEDULES = {"constant", "constant_with_warmup"}
_SPIKE_WINDOW = 50
_last_seen: dict[tuple, tuple] = {}
"""Per job (database, id, uid), the shape of its series when last examined (count, last
step, total steps, hyperparameters, settings): a refresh that brings nothing new skips
detection. Only a shortcut: findings are keyed, so a new process records nothing twice."""


@dataclass(frozen=True)
class Finding:
    kind: str
    """overfitting | instability | plateau | schedule"""
    step: int
    """The step at which the trouble was detectable."""
    reason: str
    """What exactly, within the kind (e.g. ``grad_spike``, ``nan``)."""
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    """Steps and values that show it."""

    @property
    def key(self) -> str:
        return f"health:{self.kind}:{self.reason}:{self.step}"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "step": self.step, "evidence": self.evidence}


def _finite(series: Series) -> list[tuple[int, float]]:
    return [(s, v) for s, v in series if v is not None and math.isfinite(v)]


def _slope(points: Sequence[tuple[int, float]]) -> float:
    """Least-squares slope of value over step (0 for fewer than two distinct steps)."""
    if len(points) < 2:
        return 0.0
    xs = [float(s) for s, _ in points]
    ys = [v for _, v in points]
    mx, my = mean(xs), mean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def _r(v: float) -> float:
    return float(f"{v:.6g}")


def detect_overfitting(train: Series, eval_: Series, *, evaluations: int = 3) -> list[Finding]:
    """Eval loss rose ``evaluations`` times in a row while train loss fell over the same
    steps. One finding per episode (it ends when eval loss stops rising)."""
    ev = sorted(_finite(eval_))
    tr = sorted(_finite(train))
    out: list[Finding] = []
    in_episode = False
    for i in range(evaluations, len(ev)):
        window = ev[i - evaluations : i + 1]
        rising = all(window[k + 1][1] > window[k][1] for k in range(evaluations))
        if not rising:
            in_episode = False
            continue
        if in_episode:
            continue
        first, last = window[0][0], window[-1][0]
        span = [p for p in tr if first <= p[0] <= last]
        if len(span) < 2 or _slope(span) >= 0:
            continue
        in_episode = True
        best = window[0]
        out.append(
            Finding(
                "overfitting",
                last,
                "eval_rising",
                f"Overfitting: eval loss rose {evaluations} evaluations in a row (step "
                f"{first}: {best[1]:.4g} -> step {last}: {window[-1][1]:.4g}) while train "
                f"loss fell ({span[0][1]:.4g} -> {span[-1][1]:.4g}); the best checkpoint is "
                f"near step {first}: stop there, or train less or on more data",
                {
                    "eval_steps": [s for s, _ in window],
                    "eval_loss": [_r(v) for _, v in window],
                    "train_steps": [span[0][0], span[-1][0]],
                    "train_loss": [_r(span[0][1]), _r(span[-1][1])],
                    "best_step": first,
                },
            )
        )
    return out


def detect_instability(
    train: Series,
    grad_norm: Series,
    *,
    spike_z: float = 6.0,
    history: int = 5,
    explode_factor: float = 4.0,
) -> list[Finding]:
    """Loss NaN/inf (the first), loss exploding over its running minimum (once per
    episode), grad-norm spikes by robust z-score against the recent median/MAD (once per
    run of consecutive spikes)."""
    out: list[Finding] = []
    tip = "; lower the learning rate (or clip gradients) and launch again"
    for s, v in sorted(train):
        if v is not None and not math.isfinite(v):
            out.append(
                Finding(
                    "instability",
                    s,
                    "loss_nan",
                    f"Instability: train loss is {v} at step {s}" + tip,
                    {"steps": [s], "train_loss": [str(v)]},
                )
            )
            break
    running_min: tuple[int, float] | None = None
    exploding = False
    for s, v in sorted(_finite(train)):
        # no history needed: a loss several times its minimum is never noise
        if running_min is not None and running_min[1] > 0:
            over = v > explode_factor * running_min[1]
            if over and not exploding:
                out.append(
                    Finding(
                        "instability",
                        s,
                        "loss_exploding",
                        f"Instability: train loss {v:.4g} at step {s} is over "
                        f"{explode_factor:g}x its minimum {running_min[1]:.4g} (step "
                        f"{running_min[0]})" + tip,
                        {
                            "steps": [running_min[0], s],
                            "train_loss": [_r(running_min[1]), _r(v)],
                        },
                    )
                )
            exploding = over
        if running_min is None or v < running_min[1]:
            running_min = (s, v)
    points = sorted((s, v) for s, v in grad_norm if v is not None)
    spiking = False
    for i, (s, v) in enumerate(points):
        prior = [p for _, p in points[max(0, i - _SPIKE_WINDOW) : i] if math.isfinite(p)]
        if len(prior) < history:
            continue
        med = median(prior)
        mad = median(abs(p - med) for p in prior)
        mad = max(mad, 1e-3 * abs(med), 1e-12)  # a flat history: judge against a sliver
        z = 0.6745 * (v - med) / mad if math.isfinite(v) else math.inf
        spike = z > spike_z
        if spike and not spiking:
            out.append(
                Finding(
                    "instability",
                    s,
                    "grad_spike",
                    f"Instability: grad norm {v:.4g} at step {s} is a spike (robust z "
                    f"{z:.1f} over the recent median {med:.4g})" + tip,
                    {
                        "steps": [s],
                        "grad_norm": [_r(v) if math.isfinite(v) else str(v)],
                        "median": _r(med),
                        "z": _r(z) if math.isfinite(z) else str(z),
                    },
                )
            )
        spiking = spike
    return out


def detect_plateau(
    loss: Series, *, window: int = 20, min_improvement: float = 0.01, name: str = "train_loss"
) -> list[Finding]:
    """The mean of the last window of points is not ``min_improvement`` (relative) below
    the mean of the window before; the first such step only (one plateau per run).

    The window is ``window`` points or a fifth of the points so far, whichever is more: a
    loss that keeps falling as a power of the step (as losses do) loses the same share per
    window at any point of a run and is never flagged, a flat stretch is."""
    pts = sorted(_finite(loss))
    prefix = [0.0]
    for _, v in pts:
        prefix.append(prefix[-1] + v)
    for i in range(2 * window - 1, len(pts)):
        w = max(window, (i + 1) // 5)
        if i + 1 < 2 * w:
            continue
        before = (prefix[i + 1 - w] - prefix[i + 1 - 2 * w]) / w
        last = (prefix[i + 1] - prefix[i + 1 - w]) / w
        if before - last > min_improvement * abs(before):
            continue
        s0, s = pts[i + 1 - 2 * w][0], pts[i][0]
        return [
            Finding(
                "plateau",
                s,
                name,
                f"Plateau: {name.replace('_', ' ')} has not improved by "
                f"{min_improvement:.0%} over steps {s0}-{s} (mean {before:.4g} -> "
                f"{last:.4g}); more steps here buy little: stop, or change the learning "
                "rate or the data",
                {"steps": [s0, pts[i + 1 - w][0], s], "mean": [_r(before), _r(last)]},
            )
        ]
    return []


def detect_schedule(
    lr: Series,
    hyperparameters: dict[str, Any] | None,
    total_steps: int | None,
    *,
    tolerance: float = 0.001,
) -> list[Finding]:
    """The learning rate against the schedule the job's hyperparameters name (``scheduler``
    or ``lr_scheduler_type``, with ``warmup_ratio`` or ``warmup_steps``): nothing is judged
    where they do not say. Decaying schedules must decrease after warmup (judged once the
    points span a tenth of the run), constant ones must stay put, warmup must not fall."""
    hp = hyperparameters or {}
    scheduler = hp.get("scheduler") or hp.get("lr_scheduler_type")
    pts = sorted(_finite(lr))
    if not isinstance(scheduler, str) or len(pts) < 3:
        return []
    warmup = hp.get("warmup_steps") or 0
    if not warmup and hp.get("warmup_ratio") and total_steps:
        warmup = math.ceil(float(hp["warmup_ratio"]) * total_steps)
    warm = [p for p in pts if p[0] <= warmup]
    after = [p for p in pts if p[0] > warmup]
    for (s0, v0), (s1, v1) in zip(warm, warm[1:], strict=False):
        if v1 < v0 * (1 - tolerance):
            return [
                _schedule(
                    s1,
                    "warmup_falling",
                    f"the learning rate fell during warmup (step {s0}: {v0:.3g} -> step "
                    f"{s1}: {v1:.3g}) while {scheduler} with {warmup} warmup steps was "
                    "configured",
                    scheduler,
                    [(s0, v0), (s1, v1)],
                )
            ]
    if len(after) < 2:
        return []
    first = after[0]
    span_needed = max(1, (total_steps or 0) // 10)
    for s, v in after[1:]:
        if scheduler in DECAYING_SCHEDULES and scheduler != "cosine_with_restarts":
            if s - first[0] < span_needed:
                continue
            if v >= first[1] * (1 - tolerance):
                verb = "rose" if v > first[1] * (1 + tolerance) else "stayed constant"
                return [
                    _schedule(
                        s,
                        "not_decaying",
                        f"the learning rate {verb} after warmup (step {first[0]}: "
                        f"{first[1]:.3g} -> step {s}: {v:.3g}) while a {scheduler} decay "
                        "was configured",
                        scheduler,
                        [first, (s, v)],
                    )
                ]
            return []  # decaying as configured
        if scheduler in CONSTANT_SCHEDULES and abs(v - first[1]) > tolerance * first[1]:
            return [
                _schedule(
                    s,
                    "not_constant",
                    f"the learning rate changed after warmup (step {first[0]}: "
                    f"{first[1]:.3g} -> step {s}: {v:.3g}) while a {scheduler} schedule "
                    "was configured",
                    scheduler,
                    [first, (s, v)],
                )
            ]
    return []


def _schedule(
    step: int, reason: str, what: str, scheduler: str, pts: list[tuple[int, float]]
) -> Finding:
    return Finding(
        "schedule",
        step,
        reason,
        f"Schedule: {what}; check the scheduler options of the job",
        {
            "steps": [s for s, _ in pts],
            "learning_rate": [_r(v) for _, v in pts],
            "configured": scheduler,
        },
    )


@dataclass
class Curves:
    """A job's metric series, by metric."""

    train_loss: list[tuple[int, float]] = field(default_factory=list)
    eval_loss: list[tuple[int, float]] = field(default_factory=list)
    learning_rate: list[tuple[int, float]] = field(default_factory=list)
    grad_norm: list[tuple[int, float]] = field(default_factory=list)

    @classmethod
    def of(cls, points: Iterable[Any]) -> Curves:
        """From metric points (db rows or provider points: same field names)."""
        c = cls()
        for p in sorted(points, key=lambda p: p.step):
            for name in ("train_loss", "eval_loss", "learning_rate", "grad_norm"):
                value = getattr(p, name, None)
                if value is not None:
                    getattr(c, name).append((p.step, float(value)))
        return c


def detect(
    curves: Curves,
    settings: HealthSettings,
    *,
    hyperparameters: dict[str, Any] | None = None,
    total_steps: int | None = None,
) -> list[Finding]:
    """Every finding over a job's curves, by step."""
    s = settings
    found = [
        *detect_overfitting(curves.train_loss, curves.eval_loss, evaluations=s.overfit_evaluations),
        *detect_instability(
            curves.train_loss,
            curves.grad_norm,
            spike_z=s.spike_z,
            history=s.spike_history,
            explode_factor=s.explode_factor,
        ),
        *detect_plateau(
            curves.train_loss, window=s.plateau_window, min_improvement=s.plateau_min_improvement
        ),
        *detect_schedule(
            curves.learning_rate, hyperparameters, total_steps, tolerance=s.schedule_tolerance
        ),
    ]
    return sorted(found, key=lambda f: (f.step, f.kind))


def record_health(
    session: Session,
    job: Job,
    settings: HealthSettings | None = None,
    extra_points: Iterable[Any] = (),
) -> list[Finding]:
    """Run detection over the job's stored metrics and record each finding as a ``health``
    job event, once (keyed); returns the findings recorded now. ``extra_points`` are
    points of this refresh whose non-finite values (NaN) the database cannot keep."""
    if settings is None:
        from app.settings import get_settings

        settings = get_settings().health
    nan_points = [
        (name, p.step, float(value))
        for p in extra_points  # NaN is stored as NULL by SQLite: take it from the report
        for name in ("train_loss", "eval_loss", "grad_norm")
        if (value := getattr(p, name, None)) is not None and not math.isfinite(value)
    ]
    shape = session.execute(
        select(func.count(), func.max(MetricPoint.step)).where(col(MetricPoint.job_id) == job.id)
    ).one()
    which = (str(session.get_bind().url), job.id, job.uid)
    seen = (tuple(shape), job.total_steps, str(job.hyperparameters), settings)
    if not nan_points and _last_seen.get(which) == seen:
        return []  # the series has not changed since the last run: nothing new to find
    rows = list(session.scalars(select(MetricPoint).where(col(MetricPoint.job_id) == job.id)))
    curves = Curves.of(rows)
    for name, step, value in nan_points:
        getattr(curves, name).append((step, value))
    findings = detect(
        curves, settings, hyperparameters=job.hyperparameters, total_steps=job.total_steps
    )
    recorded = []
    for f in findings:
        if repository.add_local_event(
            session,
            job,
            f.message,
            level="warn",
            type=EVENT_TYPE,
            data=f.as_dict(),
            key=f.key,
        ):
            recorded.append(f)
    _last_seen[which] = seen
    return recorded


def health_list(events: Iterable[JobEvent]) -> list[dict[str, Any]]:
    """The job's findings (``{kind, step, evidence}``, by step) from its events."""
    out = [e.data for e in events if e.type == EVENT_TYPE and e.data]
    return sorted(out, key=lambda d: (d["step"], d["kind"]))
