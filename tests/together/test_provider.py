"""The Together provider over real HTTP with the real ``together`` SDK against the
emulator: spec mapping, limits checked before sending, upload, quote, refresh, cancel."""

from __future__ import annotations

import typing

import pytest
import together.types.fine_tuning_list_response as sdk_jobs

from app.sandbox.faults import FaultPlan
from app.sandbox.together.server import TogetherSandboxServer
from providers.errors import ConfigurationError, ProviderError
from providers.together import TogetherProvider
from providers.together.config import TogetherConfig
from providers.together.convert import STATUS_MAP, normalize_status, uid_tag
from providers.types import Hyperparameters, JobStatus
from tests.sandbox.conftest import jsonl, sentiment_rows
from tests.together.conftest import LARGE, SMALL, STEP_S, provider_for, spec_for

EPOCHS2_BATCH8 = Hyperparameters(n_epochs=2, batch_size=8)  # 12 rows: 4 steps


def test_registered_and_cheap_to_build():
    from providers.registry import discover

    assert discover().get("together") is TogetherProvider
    import subprocess
    import sys

    fresh = subprocess.run(  # a fresh interpreter: is the SDK imported by construction?
        [
            sys.executable,
            "-c",
            "import sys; from providers.together import TogetherProvider; TogetherProvider(); "
            "print('together' in sys.modules, 'httpx' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert fresh.stdout.split() == ["False", "False"], fresh.stderr
    made = TogetherProvider()  # no key, no network: only the first call needs them
    with pytest.raises(ConfigurationError, match="TOGETHER_API_KEY"):
        _ = made.client


def test_spec_checked_against_the_models_limits_before_anything_is_sent(
    provider, server, train_file
):
    def problems(**fields):
        return " | ".join(provider.validate_spec(spec_for(train_file, **fields)))

    assert problems(hyperparameters=EPOCHS2_BATCH8) == ""
    assert "lora_r=128 is outside 1-64, the max_rank of" in problems(options={"lora_r": 128})
    assert "batch_size=4 is outside 8-96" in problems(hyperparameters=Hyperparameters(batch_size=4))
    assert "batch_size=64 is outside 8-48" in problems(  # DPO halves the batch
        method="dpo", hyperparameters=Hyperparameters(batch_size=64)
    )
    assert "n_epochs=50 is outside 1-20, the max_num_epochs" in problems(
        hyperparameters=Hyperparameters(n_epochs=50)
    )
    assert "learning-rate range" in problems(
        hyperparameters=Hyperparameters(learning_rate_multiplier=5000)
    )
    assert "LoRA fine-tuning only" in problems(base_model=LARGE, options={"lora": False})
    assert "not among the target_modules" in problems(
        options={"lora_trainable_modules": "q_proj,wings"}
    )
    assert "max_num_checkpoints" in problems(options={"n_checkpoints": 99})
    assert "cannot be fine-tuned" in problems(base_model="nobody/nothing")
    assert "unknown option(s) lora_rank" in problems(options={"lora_rank": 4})
    assert "train_on_inputs must be" in problems(options={"train_on_inputs": "maybe"})
    assert not server.state.jobs and not server.state.files


def test_sft_lora_fields_mapped_onto_together_s(provider, server, train_file, tmp_path):
    validation = tmp_path / "val.jsonl"
    validation.write_bytes(jsonl(sentiment_rows()[:4]))
    spec = spec_for(
        train_file,
        validation_path=str(validation),
        hyperparameters=Hyperparameters(n_epochs=3, batch_size=16, learning_rate_multiplier=2),
        suffix="shop",
        seed=42,
        options={
            "lora_r": 16,
            "lora_alpha": 8,
            "lora_dropout": 0.1,
            "lora_trainable_modules": "q_proj,v_proj",
            "n_evals": 2,
            "n_checkpoints": 3,
            "train_on_inputs": "true",  # as the wizard sends it
        },
    )
    assert provider.validate_spec(spec) == []
    created = provider.create(provider.prepare(spec))
    job = server.state.jobs[created.remote_id]
    assert (job.n_epochs, job.batch_size, job.n_evals, job.n_checkpoints) == (3, 16, 2, 3)
    assert job.learning_rate == pytest.approx(2e-5)  # Together's 1e-5 x the multiplier
    assert job.training_type == {
        "type": "Lora",
        "lora_r": 16,
        "lora_alpha": 8,
        "lora_dropout": 0.1,
        "lora_trainable_modules": "q_proj,v_proj",
    }
    assert job.training_method == {"method": "sft", "train_on_inputs": True}
    assert job.validation_file
    assert job.suffix == f"shop-{uid_tag(spec.ftm_job_uid)}"
    assert created.status == JobStatus.VALIDATING and created.raw_status == "pending"


def test_dpo_full_with_beta_and_an_absolute_learning_rate(provider, server, dpo_file):
    spec = spec_for(
        dpo_file,
        method="dpo",
        hyperparameters=Hyperparameters(beta=0.3, learning_rate=3e-6, batch_size=8),
        options={"lora": False},
    )
    assert provider.validate_spec(spec) == []
    job = server.state.jobs[provider.create(provider.prepare(spec)).remote_id]
    assert job.training_type == {"type": "Full"}
    assert job.training_method["method"] == "dpo" and job.training_method["dpo_beta"] == 0.3
    assert job.learning_rate == pytest.approx(3e-6)


def test_the_sdk_file_check_refuses_a_bad_file_before_upload(provider, server, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(jsonl(sentiment_rows()[:2]) + b"{not json\n")
    with pytest.raises(ProviderError, match="file check refused bad.jsonl: .*line 3") as caught:
        provider.prepare(spec_for(bad))
    assert caught.value.code == "invalid_file" and "\n" not in caught.value.message
    assert not server.state.files


def test_an_upload_is_reused_for_the_same_content(provider, server, train_file):
    first = provider.prepare(spec_for(train_file)).options["training_file"]
    again = provider.prepare(spec_for(train_file)).options["training_file"]
    assert first == again and len(server.state.files) == 1


def test_quote_is_the_price_the_finished_job_reports(provider, server, train_file):
    spec = provider.prepare(spec_for(train_file, hyperparameters=EPOCHS2_BATCH8))
    quote = provider.quote(spec)
    assert quote is not None and quote.allowed_to_proceed and quote.total_usd > 0
    created = provider.create(spec)
    server.advance(1000 * STEP_S)
    done = provider.refresh(created.remote_id).job
    assert done.status == JobStatus.SUCCEEDED
    total_price = server.state.jobs[created.remote_id].total_price
    assert done.billed_usd == total_price / 1e9 == pytest.approx(quote.total_usd)
    assert quote.train_tokens == done.trained_tokens


def test_a_quote_over_the_credit_limit_says_why(tmp_path, train_file):
    from app.sandbox.together.server import TogetherSandboxServer

    with TogetherSandboxServer(
        frozen=True, data_dir=tmp_path / "poor", credit_limit_dollars=0
    ) as s:
        made = provider_for(s)
        quote = made.quote(made.prepare(spec_for(train_file)))
        assert quote is not None and not quote.allowed_to_proceed
        assert "over the account's limit of $0.00" in quote.reason
        made.close()


def test_refresh_maps_statuses_and_returns_only_new_events(provider, server, train_file):
    spec = spec_for(train_file, hyperparameters=EPOCHS2_BATCH8, options={"n_checkpoints": 2})
    remote_id = provider.create(provider.prepare(spec)).remote_id
    first = provider.refresh(remote_id)
    assert first.job.status == JobStatus.VALIDATING and len(first.events) == 1
    again = provider.refresh(remote_id, first.events_cursor)
    assert again.events == [] and again.events_cursor == first.events_cursor
    server.advance(7 * STEP_S)  # validation, queue, two of four steps: a checkpoint
    running = provider.refresh(remote_id, first.events_cursor)
    assert running.job.status == JobStatus.RUNNING and running.job.raw_status == "running"
    assert running.events[0].id == f"{remote_id}#1"  # the one seen before is not repeated
    assert (running.job.step, running.job.total_steps) == (2, 4)
    assert [c.step for c in running.checkpoints] == [2]
    assert [m.step for m in running.metrics] == [1, 2] and running.metrics[0].train_loss > 0
    server.advance(STEP_S * 2)
    compressing = provider.refresh(remote_id, running.events_cursor)
    assert compressing.job.raw_status == "compressing"
    assert compressing.job.status == JobStatus.RUNNING
    assert [m.step for m in compressing.metrics] == [3, 4]  # only the steps not seen
    server.advance(1000 * STEP_S)
    done = provider.refresh(remote_id, compressing.events_cursor)
    assert done.job.status == JobStatus.SUCCEEDED
    *service_events, note = done.events  # ftm's own note that no endpoint was started
    assert service_events[-1].type == "job_complete" and "on first use" in note.message
    assert done.metrics == []  # every step's metrics were already read
    seen = [e.id for r in (first, running, compressing) for e in r.events]
    seen += [e.id for e in service_events]
    assert len(seen) == len(set(seen)) == len(server.state.jobs[remote_id].events)
    assert done.job.fine_tuned_model == server.state.jobs[remote_id].model_output_name
    assert [c.step for c in done.checkpoints] == [2, 4]
    assert set(done.checkpoints[-1].metrics["paths"]) == {"Final Adapter", "Final Merged"}


def test_every_status_the_sdk_knows_has_a_place_in_ftm_s_state_machine():
    from together.lib.types.fine_tuning import COMPLETED_STATUSES, FinetuneJobStatus

    wire_statuses = set(typing.get_args(sdk_jobs.Data.model_fields["status"].annotation))
    sdk_statuses = {s.value for s in FinetuneJobStatus} | wire_statuses
    assert "user_error" in sdk_statuses and "compressing" in sdk_statuses
    assert sdk_statuses <= set(STATUS_MAP), sdk_statuses - set(STATUS_MAP)
    ended = {s.value for s in COMPLETED_STATUSES}  # the SDK's own list of final statuses
    for raw in sdk_statuses:
        assert normalize_status(raw).is_terminal == (raw in ended), raw
    assert normalize_status("user_error") == JobStatus.FAILED
    assert normalize_status("completed") == JobStatus.SUCCEEDED
    assert normalize_status("something_new") == JobStatus.QUEUED  # unknown: not terminal


def test_a_file_failing_server_side_validation_fails_the_job_with_its_reason(
    provider, server, tmp_path
):
    rows = sentiment_rows()
    rows[3] = {"messages": [{"role": "user", "content": "no reply here"}]}
    path = tmp_path / "half.jsonl"
    path.write_bytes(jsonl(rows))
    # the SDK's check passes it (a lone user turn is well formed); the service refuses it
    remote_id = provider.create(provider.prepare(spec_for(path))).remote_id
    server.advance(10 * STEP_S)
    failed = provider.refresh(remote_id).job
    assert failed.status == JobStatus.FAILED and failed.raw_status == "error"
    assert failed.error is not None and "Line 4" in failed.error.message


def test_cancel_then_cancelled_and_a_repeated_cancel_after_a_lost_answer(
    provider, server, train_file
):
    remote_id = provider.create(provider.prepare(spec_for(train_file))).remote_id
    server.advance(6 * STEP_S)
    server.faults = FaultPlan().next(1, "drop_after", "jobs.cancel")  # cancelled, answer lost
    cancelling = provider.cancel(remote_id)  # the retry is refused: the job is read instead
    assert cancelling.raw_status == "cancel_requested" and not cancelling.status.is_terminal
    server.advance(STEP_S)
    assert provider.refresh(remote_id).job.status == JobStatus.CANCELLED
    with pytest.raises(ProviderError, match="cannot be cancelled"):
        provider.cancel(remote_id)


def test_list_remote_jobs_for_import(provider, server, train_file, dpo_file):
    provider.create(provider.prepare(spec_for(train_file, uid="a" * 32)))
    provider.create(provider.prepare(spec_for(dpo_file, uid="b" * 32, method="dpo")))
    listed = provider.list_remote_jobs()
    assert {j.remote_id for j in listed} == set(server.state.jobs)
    assert sorted(j.hyperparameters["method"] for j in listed) == ["dpo", "supervised"]
    assert all(j.base_model == SMALL for j in listed)
    assert len(provider.list_remote_jobs(limit=1)) == 1


def test_a_key_never_appears_in_an_error(server, train_file):
    secret = "tgp_v1_Secret123456789"
    made = TogetherProvider(
        TogetherConfig(base_url="http://127.0.0.1:9", api_key=secret, timeout_s=1.0),
        sleep=lambda s: None,
    )
    with pytest.raises(ProviderError) as caught:
        made.prepare(spec_for(train_file))
    assert secret not in str(caught.value) and "Together AI" in str(caught.value)
    assert caught.value.code == "not_sent"


def test_delete_through_the_provider(provider, server, train_file):
    remote_id = provider.create(provider.prepare(spec_for(train_file))).remote_id
    with pytest.raises(ProviderError, match="cancel it before deleting"):
        provider.delete(remote_id)
    server.advance(1000 * STEP_S)
    provider.delete(remote_id)
    assert not server.state.jobs and provider.list_remote_jobs() == []


def test_launch_warnings_name_the_serving_bill(provider):
    from tests.together.conftest import spec_for as make

    small = provider.launch_warnings(make(__file__))
    assert len(small) == 1 and "dedicated endpoint, billed per minute" in small[0]
    hourly = provider.pricing().models[SMALL].hosting_per_hour
    assert hourly and f"about ${hourly:.2f}/hour" in small[0]  # the declared rate
    assert "1x_nvidia_h100_80gb_sxm" in small[0] and "on first use" in small[0]
    reference = provider.launch_warnings(make(__file__, base_model=LARGE))
    assert any("cannot deploy it" in w for w in reference)


def test_key_from_a_command_and_a_failing_command_says_so_without_its_output(
    monkeypatch, train_file, tmp_path
):
    from providers.together.config import resolve_api_key

    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    # an emulator that accepts only that key: the command's output is what is sent
    with TogetherSandboxServer(
        seconds_per_step=STEP_S, api_key="tgp_v1_fromcmd", data_dir=tmp_path / "keyed"
    ) as server:
        by_command = TogetherConfig(base_url=server.base_url, api_key_command="echo tgp_v1_fromcmd")
        assert resolve_api_key(by_command) == "tgp_v1_fromcmd"
        made = TogetherProvider(by_command)
        assert made.prepare(spec_for(train_file)).options["training_file"] in server.state.files
        made.close()
    failing = TogetherConfig(api_key_command="echo tgp_v1_leaked; exit 3")
    with pytest.raises(ConfigurationError, match="exited with status 3") as caught:
        resolve_api_key(failing)
    assert "tgp_v1_leaked" not in str(caught.value)
    monkeypatch.setenv("MY_TOGETHER_KEY", "tgp_v1_fromenv")
    assert resolve_api_key(TogetherConfig(api_key_env="MY_TOGETHER_KEY")) == "tgp_v1_fromenv"


def test_complete_answers_from_a_base_model_serverless(provider, server):
    """(A fine-tune answers through its dedicated endpoint: test_deploy.py.)"""
    from providers.types import ChatMessage

    shots = [
        ChatMessage("user", "The soup was cold"),
        ChatMessage("assistant", "negative"),
        ChatMessage("user", "The soup was lovely and warm"),
    ]
    answer = provider.complete(SMALL, shots)
    assert answer.text == "negative" and answer.prompt_tokens > 0 and answer.model == SMALL
    assert not server.state.endpoints  # a base model needs no endpoint


def test_without_the_sdk_installed_the_spec_check_says_how_to_install_it(tmp_path, train_file):
    import os
    import subprocess
    import sys

    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "together.py").write_text("raise ImportError('No module named together')\n")
    script = (
        "import sys; from pathlib import Path; from providers.together import TogetherProvider;"
        "from tests.together.conftest import spec_for;"
        f"print(TogetherProvider().validate_spec(spec_for(Path({str(train_file)!r}))))"
    )
    env = {
        **os.environ,
        "TOGETHER_API_KEY": "tgp_v1_x",
        "PYTHONPATH": os.pathsep.join([str(shadow), *sys.path]),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert "pip install 'ftm[together]'" in done.stdout, done.stderr
    assert "Traceback" not in done.stderr
