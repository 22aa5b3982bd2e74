"""Training health: each detector on a synthetic curve that turns at a known step (the
detection step is asserted against it), no false alarm on a clean curve, NaN, findings
recorded once as job events, `ftm jobs show --json` and `ftm watch`."""

from __future__ import annotations

import json
import math
import random

from click.testing import CliRunner
from sqlmodel import func, select

from app.jobs import health as health_module
from app.jobs.health import (
    Curves,
    detect,
    detect_instability,
    detect_overfitting,
    detect_plateau,
    detect_schedule,
    record_health,
)
from app.settings import HealthSettings
from db.engine import read_session, write_session
from db.models import Job, JobEvent, MetricPoint

DEFAULTS = HealthSettings()


def _noisy(values, seed=0, scale=0.01):
    rng = random.Random(seed)
    return [v * (1 + rng.uniform(-scale, scale)) for v in values]


def clean_run(steps=200, seed=0) -> Curves:
    """A healthy run: loss falling all along, eval loss tracking it, cosine decay after
    10 warmup steps, grad norm noisy but steady."""
    train = _noisy([2.5 * (1 + s) ** -0.3 for s in range(1, steps + 1)], seed)
    rng = random.Random(seed + 1)
    return Curves(
        train_loss=list(zip(range(1, steps + 1), train, strict=True)),
        eval_loss=[(s, 2.6 * (1 + s) ** -0.28) for s in range(10, steps + 1, 10)],
        learning_rate=[(s, _cosine(s, steps, warmup=10)) for s in range(1, steps + 1)],
        grad_norm=[(s, 1.0 + rng.uniform(-0.2, 0.2)) for s in range(1, steps + 1)],
    )


def _cosine(step, total, warmup, peak=1e-4):
    if step <= warmup:
        return peak * step / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))


COSINE_HP = {"scheduler": "cosine", "warmup_ratio": 0.05}


def test_a_clean_run_raises_nothing():
    for seed in range(5):
        assert (
            detect(clean_run(seed=seed), DEFAULTS, hyperparameters=COSINE_HP, total_steps=200) == []
        )


def test_overfitting_is_found_three_evaluations_after_eval_loss_turns():
    turn = 100  # eval loss is lowest here, then rises while train loss keeps falling
    curves = clean_run()
    curves.eval_loss = [(s, 1.0 + 0.002 * abs(s - turn)) for s in range(10, 201, 10)]
    found = detect_overfitting(curves.train_loss, curves.eval_loss, evaluations=3)
    assert [(f.kind, f.step) for f in found] == [("overfitting", turn + 30)]
    assert found[0].evidence["best_step"] == turn
    assert found[0].evidence["eval_steps"] == [100, 110, 120, 130]
    # eval loss rising while train loss rises too is not overfitting (it is divergence)
    rising_train = [(s, 1 + 0.01 * s) for s in range(1, 201)]
    assert detect_overfitting(rising_train, curves.eval_loss) == []


def test_a_grad_norm_spike_is_found_at_its_step_once():
    curves = clean_run()
    spike = 120
    curves.grad_norm = [(s, 25.0 if s in (spike, spike + 1) else v) for s, v in curves.grad_norm]
    found = detect_instability(curves.train_loss, curves.grad_norm)
    assert [(f.reason, f.step) for f in found] == [("grad_spike", spike)]
    assert found[0].evidence["grad_norm"] == [25.0] and found[0].evidence["z"] > 6


def test_nan_and_exploding_loss():
    train = [(s, 2.0 / s**0.2) for s in range(1, 61)]
    nan_at = 45
    with_nan = [(s, math.nan if s >= nan_at else v) for s, v in train]
    found = detect_instability(with_nan, [])
    assert [(f.reason, f.step) for f in found] == [("loss_nan", nan_at)]
    # from step 50 the loss grows 1.5x per step: it passes 4x its minimum at step 54
    exploding = [(s, v if s < 50 else train[48][1] * 1.5 ** (s - 49)) for s, v in train]
    found = detect_instability(exploding, [])
    assert [(f.reason, f.step) for f in found] == [("loss_exploding", 53)]


def test_a_plateau_is_found_within_two_windows_of_the_turn():
    turn = 100  # the loss falls 1% a step until here, then stays flat (noise 0.5%)
    values = [2.0 * 0.99 ** min(s, turn) for s in range(1, 301)]
    loss = list(zip(range(1, 301), _noisy(values, scale=0.005), strict=True))
    found = detect_plateau(loss, window=20, min_improvement=0.01)
    assert len(found) == 1 and found[0].kind == "plateau"
    # both windows (20 points, or a fifth of the points so far) must be past the turn,
    # nearly: found at step 153, its windows 30 points long
    step = found[0].step
    assert turn < step <= turn + 2 * max(20, step // 5), step
    assert found[0].evidence["steps"][0] > 90


def test_a_long_power_law_loss_is_no_plateau():
    """Losses fall as a power of the step: as slowly late in a long run as early in a short
    one. Over 10,000 noisy steps that is no plateau; its flat end (from 6,000) is."""
    values = [3.0 * s**-0.3 for s in range(1, 10_001)]
    loss = list(zip(range(1, 10_001), _noisy(values, seed=3), strict=True))
    assert detect_plateau(loss) == []
    flat_end = [(s, v if s < 6000 else loss[5999][1]) for s, v in loss]
    assert 6000 < detect_plateau(flat_end)[0].step < 9000


def test_schedule_not_as_configured():
    lr_const = [(s, 1e-4) for s in range(1, 201)]
    found = detect_schedule(lr_const, COSINE_HP, 200)
    # warmup is 10 steps; the decay is judged once the points span a tenth of the run
    assert [(f.reason, f.step) for f in found] == [("not_decaying", 31)]
    cosine = [(s, _cosine(s, 200, 10)) for s in range(1, 201)]
    assert detect_schedule(cosine, COSINE_HP, 200) == []
    assert detect_schedule(lr_const, {"scheduler": "constant"}, 200) == []
    found = detect_schedule(cosine, {"scheduler": "constant"}, 200)
    assert [(f.reason, f.step) for f in found] == [("not_constant", 2)]
    falling_warmup = [(s, 1e-4 / s) for s in range(1, 201)]
    assert [f.reason for f in detect_schedule(falling_warmup, COSINE_HP, 200)] == ["warmup_falling"]
    # nothing configured (e.g. a provider that does not say): nothing judged
    assert detect_schedule(lr_const, {"n_epochs": 3}, 200) == []


def _job_with_spike(engine, spike=30) -> int:
    with write_session(engine) as s:
        job = Job(uid="health-1", name="h", provider="openai", base_model="m", method="lora")
        s.add(job)
        s.flush()
        for step in range(1, 41):
            g = 30.0 if step == spike else 1.0 + 0.01 * (step % 5)
            s.add(MetricPoint(job_id=job.id, step=step, train_loss=2.0 / step**0.1, grad_norm=g))
        return job.id


def _health_events(engine, job_id) -> int:
    with read_session(engine) as s:
        return s.scalar(
            select(func.count())
            .select_from(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.type == "health")
        )


def test_findings_are_recorded_once_and_shown_by_jobs_show(ftm_home):
    from app.cli.main import cli
    from app.database import get_engine

    engine = get_engine()
    job_id = _job_with_spike(engine)
    for _ in range(2):  # detection re-run on the same series, as by another process
        health_module._last_seen.clear()  # (its shortcut for an unchanged series starts empty)
        with write_session(engine) as s:
            first = record_health(s, s.get(Job, job_id), DEFAULTS)
        if _ == 0:
            assert [(f.kind, f.step) for f in first] == [("instability", 30)]
        else:
            assert first == []
    assert _health_events(engine, job_id) == 1
    shown = CliRunner().invoke(cli, ["jobs", "show", str(job_id), "--json"])
    assert shown.exit_code == 0, shown.output
    health = json.loads(shown.output)["health"]
    assert health == [
        {
            "kind": "instability",
            "step": 30,
            "evidence": {
                "steps": [30],
                "grad_norm": [30.0],
                "median": 1.02,
                "z": health[0]["evidence"]["z"],
            },
        }
    ]
    text = CliRunner().invoke(cli, ["jobs", "show", str(job_id)]).output
    assert "step 30" in text and "grad norm 30 at step 30 is a spike" in text


def test_watch_raises_a_new_finding_once(tmp_path, monkeypatch):
    """A running job on the emulator (its clock frozen, so it stays running) gets a grad
    norm spike among its metrics: the first `ftm watch --once` prints it, the next one
    (the same series, refreshed again) does not."""
    from app import database
    from app.cli.main import cli
    from app.jobs.launch import launch_job
    from app.sandbox.server import SandboxServer
    from tests.jobs.conftest import MODEL, make_dataset

    with SandboxServer(port=0, seconds_per_step=1.0, frozen=True) as server:
        monkeypatch.setenv("FTM_OPENAI__SANDBOX", "true")
        monkeypatch.setenv("FTM_OPENAI__SANDBOX_URL", server.base_url)
        database.reset()
        engine = database.get_engine()
        make_dataset(engine, tmp_path)
        job = launch_job("openai", "toy", MODEL)
        server.advance(5)
        with write_session(engine) as s:
            for step in range(1, 41):  # the grad norms a provider would report
                g = 30.0 if step == 30 else 1.0 + 0.01 * (step % 5)
                s.add(MetricPoint(job_id=job.id, step=1000 + step, grad_norm=g))
        outputs = [CliRunner().invoke(cli, ["watch", "--once"]) for _ in range(2)]
    assert all(o.exit_code == 0 for o in outputs), outputs[0].output
    assert all("1 active, 1 refreshed" in o.output for o in outputs)
    line = f"health: job {job.id}: Instability: grad norm 30 at step 1030 is a spike"
    assert line in outputs[0].output.replace("\n", " ").replace("  ", " ")
    assert "health:" not in outputs[1].output


def test_the_tui_loss_chart_marks_each_finding_at_its_step():
    import asyncio
    import time

    from app.database import get_engine
    from app.tui.app import create_app
    from app.tui.screens.job_detail import JobDetailScreen

    engine = get_engine()
    job_id = _job_with_spike(engine, spike=25)
    with write_session(engine) as s:
        record_health(s, s.get(Job, job_id), DEFAULTS)

    async def go():
        app = create_app(start_poller=False)
        async with app.run_test(size=(140, 40)) as pilot:
            screen = JobDetailScreen(job_id)
            await app.push_screen(screen)
            deadline = time.monotonic() + 30
            while not screen.health_marks:
                assert time.monotonic() < deadline, "no health mark on the chart"
                await pilot.pause(0.05)
            assert screen.health_marks == [("instability", 25)]
            assert screen.plotted["train"] == 40
            chart = screen.query_one("#job-loss").plt.build()
            assert chart.count("\x1b[38;5;1m│") >= 10  # a red vertical line, top to bottom

    asyncio.run(go())


def test_thresholds_are_settings(monkeypatch):
    """`health.spike_z` from the environment (or config.toml) decides what a spike is."""
    from app.database import get_engine
    from app.settings import get_settings

    engine = get_engine()
    job_id = _job_with_spike(engine)
    monkeypatch.setenv("FTM_HEALTH__SPIKE_Z", "1e9")
    get_settings.cache_clear()
    with write_session(engine) as s:
        assert record_health(s, s.get(Job, job_id)) == []
    monkeypatch.delenv("FTM_HEALTH__SPIKE_Z")
    get_settings.cache_clear()
    with write_session(engine) as s:
        assert [f.step for f in record_health(s, s.get(Job, job_id))] == [30]


def test_an_unchanged_series_is_not_examined_again(monkeypatch):
    """Every refresh asks for detection; one that brought no new point costs one count."""
    from app.database import get_engine

    engine = get_engine()
    job_id = _job_with_spike(engine)
    runs = []
    real_detect = health_module.detect
    monkeypatch.setattr(
        health_module, "detect", lambda *a, **k: runs.append(1) or real_detect(*a, **k)
    )
    for step in (None, None, 41):
        with write_session(engine) as s:
            if step:
                s.add(MetricPoint(job_id=job_id, step=step, grad_norm=1.0))
                s.flush()
            record_health(s, s.get(Job, job_id), DEFAULTS)
    assert len(runs) == 2  # the first run and the one after the new point
