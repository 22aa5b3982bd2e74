"""Each local job trains on its own GPUs, and its memory check compares against what is
free on them (issue 12, findings 1 and 5)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from app.database import get_engine
from db.engine import read_session
from db.models import JobEvent
from providers.errors import ProviderError, SpecRejected
from providers.local import LocalProvider, demo_data, devices, hardware
from providers.local.hardware import MIB, Gpu
from providers.local.jobdir import JobDir
from providers.types import JobSpec, JobStatus
from tests.hardware_facts import fake_gpus, gpu_fact, mig_fact
from tests.local.conftest import job_row, launch, wait_terminal, wait_until
from tests.tiny import labelling_files


def gpu(i: int, free_gib: float, *, mig: bool = False) -> Gpu:
    return Gpu(
        name="NVIDIA H100 80GB HBM3",
        memory_bytes=80 * 1024 * MIB,
        free_bytes=int(free_gib * 1024) * MIB,
        uuid=f"GPU-{i}aaaaaaa-0000",
        index=i,
        mig=mig,
    )


def holder(name: str, *gpus: Gpu) -> dict[str, devices.Holder]:
    h = devices.Holder(job_uid=f"{name}-uid-0123456789", name=name, devices=())
    return {g.uuid: h for g in gpus}


# -- the chooser ------------------------------------------------------------------------


def test_the_free_gpu_with_the_most_free_memory_is_chosen():
    a, b, c = gpu(0, 10), gpu(1, 70), gpu(2, 79)
    assert devices.choose([a, b, c], {}, 1) == [c]
    assert devices.choose([a, b, c], holder("x", c), 1) == [b]
    # two of them, returned in CUDA's order (rank 0 trains on the first)
    assert devices.choose([a, b, c], {}, 2) == [b, c]


def test_a_resumed_job_gets_its_own_gpus_back_when_free():
    a, b = gpu(0, 10), gpu(1, 70)
    assert devices.choose([a, b], {}, 1, prefer=[a.uuid]) == [a]
    assert devices.choose([a, b], holder("x", a), 1, prefer=[a.uuid]) == [b]


def test_no_free_gpu_is_refused_naming_the_jobs_that_hold_them():
    a, b = gpu(0, 10), gpu(1, 70)
    with pytest.raises(SpecRejected) as exc:
        devices.choose([a, b], {**holder("first", a), **holder("second", b)}, 1)
    message = exc.value.message
    assert exc.value.code == "no_free_gpu"
    assert (
        "GPU 0 (NVIDIA H100 80GB HBM3, GPU-0aaaaaaa) is held by job 'first' (first-ui)" in message
    )
    assert "GPU 1 (NVIDIA H100 80GB HBM3, GPU-1aaaaaaa) is held by job 'second'" in message
    assert "wait for one of those jobs to end" in message and "cancel one" in message
    with pytest.raises(SpecRejected, match=r"ask for fewer GPUs \(option n_gpus=1\)"):
        devices.choose([a, b], holder("first", a), 2)


def test_mig_instances_serve_one_gpu_jobs_only():
    m0, m1, whole = gpu(0, 30, mig=True), gpu(1, 30, mig=True), gpu(2, 10)
    assert devices.choose([m0, m1, whole], {}, 1) == [m0]
    with pytest.raises(SpecRejected, match="it needs 2, 1 of 1 visible is free"):
        devices.choose([m0, m1, whole], {}, 2)


def test_a_job_holds_its_gpus_only_while_its_worker_lives(tmp_path):
    live, dead = JobDir(tmp_path / "live"), JobDir(tmp_path / "dead")
    for job, uuid in ((live, "GPU-a"), (dead, "GPU-b")):
        job.path.mkdir()
        job.write_config({"job_uid": job.path.name, "devices": [uuid], "spec": {"name": "n"}})
    live.write_pid(os.getpid())
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead.write_pid(gone.pid)
    assert set(devices.holders(tmp_path)) == {"GPU-a"}
    assert devices.holders(tmp_path, besides=live.path) == {}


def test_a_worker_sees_only_its_own_gpus_named_by_uuid():
    assert devices.worker_env(["GPU-a", "GPU-b"], cpu=False) == {
        "CUDA_VISIBLE_DEVICES": "GPU-a,GPU-b",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }
    assert devices.worker_env([], cpu=True) == {"CUDA_VISIBLE_DEVICES": ""}
    assert devices.worker_env([], cpu=False) == {}  # no GPU known: the environment as it is


# -- the memory check against free memory -------------------------------------------------

# meta-llama/Llama-3.1-8B's config.json (the fields the estimate reads).
LLAMA_8B = dict(
    hidden_size=4096,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    intermediate_size=14336,
    vocab_size=128256,
    tie_word_embeddings=False,
)


def spec_8b(tmp_path: Path, uid: str = "u1", **options) -> JobSpec:
    base = tmp_path / "llama-8b"
    base.mkdir(exist_ok=True)
    (base / "config.json").write_text(json.dumps(LLAMA_8B))
    train = tmp_path / "train.jsonl"
    demo_data.write_jsonl(train, demo_data.labelling_examples(8))
    return JobSpec(
        name="t",
        base_model=str(base),
        train_path=str(train),
        method="lora",
        ftm_job_uid=uid,
        options={"max_seq_len": 1024, "batch_size": 1, **options},
    )


def test_a_gpu_whose_memory_is_in_use_refuses_a_job_that_fits_its_total(monkeypatch, tmp_path):
    # LoRA on an 8B model in bf16 needs ~17 GB: fits an L4's 22.5 GB, not the 6.5 left.
    fake_gpus(monkeypatch, tmp_path, [gpu_fact("l4", 0, used_mib=16000)])
    provider = LocalProvider(jobs_dir=tmp_path / "jobs", database_url="")
    with pytest.raises(SpecRejected) as exc:
        provider.create(spec_8b(tmp_path))
    message = exc.value.message
    assert exc.value.code == "insufficient_memory"
    assert re.search(
        r"against 7\.\d GB free on GPU 0 \(NVIDIA L4, GPU-\w+\), 24\.2 GB total", message
    )
    assert "It fits with" in message or "No single change" in message
    assert not (tmp_path / "jobs" / "u1" / "worker.pid").exists()
    fake_gpus(monkeypatch, tmp_path, [gpu_fact("l4", 0)])  # the other process ended
    assert "24.2 GB free on GPU 0" in provider.memory_check(spec_8b(tmp_path))


def test_every_gpu_of_a_multi_gpu_job_is_checked(monkeypatch, tmp_path):
    fake_gpus(monkeypatch, tmp_path, [gpu_fact("l4", 0), gpu_fact("l4", 1, used_mib=16000)])
    provider = LocalProvider(jobs_dir=tmp_path / "jobs", database_url="")
    with pytest.raises(SpecRejected, match=r"free on GPU 1 \(NVIDIA L4"):
        provider.memory_check(spec_8b(tmp_path, n_gpus=2))
    assert "on GPU 0" in provider.memory_check(spec_8b(tmp_path, n_gpus=1))


def test_uuid_and_mig_visible_devices_are_checked_on_the_gpu_not_cpu_ram(monkeypatch, tmp_path):
    a100 = gpu_fact("a100", 0)
    a100["mig"] = [mig_fact(a100, 0, "1g.10gb", 9856), mig_fact(a100, 1, "3g.40gb", 40192)]
    l4 = gpu_fact("l4", 1)
    fake_gpus(monkeypatch, tmp_path, [a100, l4])
    provider = LocalProvider(jobs_dir=tmp_path / "jobs", database_url="")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", l4["uuid"])
    assert "free on GPU 1 (NVIDIA L4" in provider.memory_check(spec_8b(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", a100["mig"][0]["uuid"])
    with pytest.raises(SpecRejected, match=r"10\.3 GB free on GPU 0 MIG device 0 \(NVIDIA A100"):
        provider.memory_check(spec_8b(tmp_path))
    # both instances visible: the roomier one is chosen
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"{a100['mig'][0]['uuid']},{a100['mig'][1]['uuid']}")
    assert "MIG device 1" in provider.memory_check(spec_8b(tmp_path))
    # a multi-GPU job cannot use MIG instances
    assert any(
        "n_gpus=2: this machine has 0 CUDA GPU(s) visible" in p
        for p in provider.validate_spec(spec_8b(tmp_path, n_gpus=2))
    )
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")  # the L4 is the one whole GPU
    assert any(
        "n_gpus=2: this machine has 1 CUDA GPU(s) visible" in p
        for p in provider.validate_spec(spec_8b(tmp_path, n_gpus=2))
    )


# -- real jobs on a fake two-GPU machine ---------------------------------------------------


def plan_data(uid: str) -> dict:
    """The data of the job's plan event in the database (the worker writes it)."""
    with read_session(get_engine()) as s:
        job = job_row(uid)
        row = s.scalars(
            select(JobEvent).where(
                JobEvent.job_id == job.id, JobEvent.provider_event_id.endswith(":plan")
            )
        ).first()
        return dict(row.data or {}) if row else {}


@pytest.mark.slow
def test_concurrent_local_jobs_each_train_on_their_own_gpu(
    provider, tiny_model, tmp_path, monkeypatch
):
    facts = [gpu_fact("h100", 0), gpu_fact("h100", 1, used_mib=4000)]
    fake_gpus(monkeypatch, tmp_path, facts)
    train, _ = labelling_files(tmp_path, n_train=16)
    # device auto: ftm assigns GPUs; this CPU machine's torch finds none and trains on the CPU
    opts = dict(device="auto", torch_threads=1, epochs=500, save_steps=10_000)
    uid_a, a = launch(provider, tiny_model, train, None, **opts)
    uid_b, b = launch(provider, tiny_model, train, None, **opts)
    seen = {}
    for uid in (uid_a, uid_b):
        data = wait_until(lambda u=uid: plan_data(u).get("devices") and plan_data(u), timeout=120)
        assert len(data["devices"]) == 1
        assert data["cuda_visible_devices"] == data["devices"][0]  # exactly one, by UUID
        seen[uid] = data["devices"][0]
    # the roomier GPU 0 went to the first job, the other to the second
    assert seen == {uid_a: facts[0]["uuid"], uid_b: facts[1]["uuid"]}

    with pytest.raises(SpecRejected) as exc:
        launch(provider, tiny_model, train, None, **opts)
    assert exc.value.code == "no_free_gpu"
    assert "GPU 0 (NVIDIA H100 80GB HBM3" in exc.value.message
    assert "GPU 1 (NVIDIA H100 80GB HBM3" in exc.value.message

    provider.cancel(a.remote_id)
    assert wait_terminal(provider, a.remote_id, timeout=120).status == JobStatus.CANCELLED
    job_a = JobDir(Path(a.remote_id))
    wait_until(lambda: not job_a.worker_alive())  # its GPU is free once the process is gone
    uid_c, c = launch(provider, tiny_model, train, None, **opts)
    assert JobDir(Path(c.remote_id)).read_config()["devices"] == [facts[0]["uuid"]]

    # a job resumed while its GPU is taken waits for one, with the reason
    status = job_a.read_status()
    job_a.write_status(**{**status, "status": "failed"})
    with pytest.raises(ProviderError, match="cannot resume now: no free GPU"):
        provider.resume_from_checkpoint(a.remote_id)
    for job in (b, c):
        provider.cancel(job.remote_id)
        wait_terminal(provider, job.remote_id, timeout=120)
        wait_until(lambda j=job: not JobDir(Path(j.remote_id)).worker_alive())
    # both free again: it resumes on its own GPU
    provider.resume_from_checkpoint(a.remote_id)
    assert job_a.read_config()["devices"] == [facts[0]["uuid"]]
    provider.cancel(a.remote_id)
    wait_terminal(provider, a.remote_id, timeout=120)


def test_two_launchers_at_once_never_take_the_same_gpu(monkeypatch, tmp_path):
    """The choice and the record are one step under the jobs directory's lock: two
    processes racing for one free GPU on a 2-GPU machine end with one GPU each."""
    fake_gpus(monkeypatch, tmp_path, [gpu_fact("h100", 0), gpu_fact("h100", 1)])
    jobs = tmp_path / "jobs"
    script = (
        "import sys, os, time\n"
        "from pathlib import Path\n"
        "from providers.local import devices, hardware\n"
        "from providers.local.jobdir import JobDir\n"
        "jobs = Path(sys.argv[1]); job = JobDir(jobs / sys.argv[2]); job.path.mkdir(parents=True)\n"
        "with devices.assignment_lock(jobs):\n"
        "    held = devices.holders(jobs)\n"
        "    time.sleep(0.5)  # a slow launch: the other must wait, not choose alongside\n"
        "    (g,) = devices.choose(hardware.visible_devices(), held, 1)\n"
        "    job.write_config({'job_uid': sys.argv[2], 'devices': [g.uuid]})\n"
        "    job.write_pid(os.getppid())  # the test process: alive throughout\n"
        "print(g.uuid)\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(jobs), name], stdout=subprocess.PIPE, text=True
        )
        for name in ("one", "two")
    ]
    chosen = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(chosen) == sorted(g.uuid for g in hardware.visible_devices())


def test_a_model_server_and_a_training_job_never_share_a_gpu(monkeypatch, tmp_path):
    """A local deployment's server holds the GPU it runs on as a training job does: a
    job is refused the server's GPU, and a server is refused a job's, before anything
    starts."""
    from providers.local.serving.manager import LocalServers
    from providers.local.serving.server_dir import ServerDir, servers_dir

    facts = [gpu_fact("h100", 0), gpu_fact("h100", 1)]
    fake_gpus(monkeypatch, tmp_path, facts)
    first, second = hardware.gpus()
    jobs_dir = tmp_path / "home" / "jobs"
    jobs_dir.mkdir(parents=True)

    server = ServerDir(servers_dir(jobs_dir) / "tiny-0123")
    server.path.mkdir(parents=True)
    server.write_config({"base_name": "tiny", "devices": [first.uuid]})
    server.write_pid(os.getpid())  # alive
    held = devices.holders(jobs_dir)
    assert held[first.uuid].describe().startswith("model server 'tiny'")
    with pytest.raises(SpecRejected) as exc:
        devices.choose(hardware.gpus(), held, 2)
    assert exc.value.code == "no_free_gpu" and "model server 'tiny'" in str(exc.value)
    assert devices.choose(hardware.gpus(), held, 1) == [second]

    job = JobDir(jobs_dir / "job-1")
    job.path.mkdir()
    job.write_config({"job_uid": "job-1", "devices": [second.uuid], "spec": {"name": "tune"}})
    job.write_pid(os.getpid())
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "b"}))
    servers = LocalServers(servers_dir(jobs_dir), sys.executable, jobs_dir=jobs_dir)
    with pytest.raises(ProviderError) as refused:
        servers.deploy(str(adapter), "cuda:1", wait=False)
    assert refused.value.code == "no_free_gpu" and "job 'tune'" in str(refused.value)
    started = [p for p in servers_dir(jobs_dir).glob("*/server.pid") if p.parent != server.path]
    assert started == []  # refused before any process was started
