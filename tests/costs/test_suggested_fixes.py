"""Every fix an estimate's error suggests works: the error is met, the suggested change is
made exactly as the message words it, and the same command then succeeds."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from click.testing import CliRunner

from app.cli.main import cli
from app.settings import get_settings
from tests.costs.conftest import chat_examples


@pytest.fixture
def ftm(monkeypatch):
    """`ftm ARGS` in process; ``prices`` sets FTM_PRICES_FILE for that call."""

    def run(*args: str, prices=None):
        if prices is not None:
            monkeypatch.setenv("FTM_PRICES_FILE", str(prices))
        get_settings.cache_clear()
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    yield run
    get_settings.cache_clear()


def test_an_unpriced_openai_model_can_be_added_as_the_error_says(ftm, make_dataset, tmp_path):
    make_dataset("tickets", chat_examples(20))
    out = ftm("estimate", "tickets", "--model", "gpt-5-mini")
    assert out.exit_code == 1
    table, fields = re.search(
        r"as (\[openai\.models\.\"gpt-5-mini\"\]) with (.+?) \(USD", out.output
    ).groups()
    names = re.findall(r"[a-z_]+", fields.replace(" and ", ", "))
    prices = tmp_path / "prices.toml"
    prices.write_text(table + "\n" + "".join(f"{n} = 1.0\n" for n in names))
    out = ftm(
        "estimate",
        "tickets",
        "--model",
        "gpt-5-mini",
        "--provider",
        "openai",
        "--json",
        prices=prices,
    )
    assert out.exit_code == 0, out.output
    assert any("gpt-5-mini" in o["label"] for o in json.loads(out.output)["options"])


def test_an_unknown_gpu_can_be_added_as_the_error_says(ftm, make_dataset, tmp_path):
    make_dataset("tickets", chat_examples(20))
    out = ftm("estimate", "tickets", "--gpu", "Lab-A6000")
    assert out.exit_code == 1
    table, fields = re.search(r"as (\[gpus\.lab-a6000\]) with (.+?)\.\s*$", out.output).groups()
    names = re.findall(r"[a-z_0-9]+", fields.replace(" and ", ", "))
    prices = tmp_path / "prices.toml"
    prices.write_text(table + "\n" + "".join(f"{n} = 48\n" for n in names))
    out = ftm(
        "estimate", "tickets", "--provider", "local", "--gpu", "lab-a6000", "--json", prices=prices
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["options"][1]["training"]["gpu"] == "lab-a6000"


@pytest.mark.parametrize("fix", ["usd_per_hour = 0.45", "owned = true\nwatts = 300"])
def test_a_gpu_without_a_price_can_be_priced_as_the_error_says(ftm, make_dataset, tmp_path, fix):
    make_dataset("tickets", chat_examples(20))
    prices = tmp_path / "prices.toml"
    spec = "[gpus.lab]\ntflops_bf16 = 155\nmemory_gb = 48\n"
    prices.write_text(spec)
    out = ftm("estimate", "tickets", "--provider", "local", "--gpu", "lab", prices=prices)
    assert out.exit_code == 1
    assert "give it `usd_per_hour` or `owned = true` with `watts`" in out.output
    prices.write_text(spec + fix + "\n")
    out = ftm("estimate", "tickets", "--provider", "local", "--gpu", "lab", "--json", prices=prices)
    assert out.exit_code == 0, out.output


def test_a_missing_prices_file_can_be_created_as_the_error_says(ftm, make_dataset, tmp_path):
    make_dataset("tickets", chat_examples(20))
    prices = tmp_path / "mine.toml"
    out = ftm("estimate", "tickets", prices=prices)
    assert (
        out.exit_code == 1 and "does not exist; fix settings prices_file or create it" in out.output
    )
    prices.write_text("")  # created (empty: the shipped prices apply)
    assert ftm("estimate", "tickets", prices=prices).exit_code == 0


@pytest.mark.parametrize("gpu", [["--gpu", "h100"], []])
def test_a_cloud_without_a_price_names_the_clouds_that_have_one(ftm, make_dataset, gpu):
    make_dataset("tickets", chat_examples(20))
    out = ftm("estimate", "tickets", "--provider", "local", *gpu, "--cloud", "nimbus")
    assert out.exit_code == 1
    clouds = re.search(r"clouds: (.+)$", out.output.strip()).group(1).split(", ")
    assert len(clouds) >= 2
    for cloud in clouds:  # training and serving are both priced in the named cloud
        out = ftm("estimate", "tickets", "--provider", "local", *gpu, "--cloud", cloud, "--json")
        assert out.exit_code == 0, (cloud, out.output)
        local = json.loads(out.output)["options"][1]
        assert local["training"]["price_cloud"] == cloud


def test_a_catalog_without_priced_gpus_says_how_to_add_one(ftm, make_dataset, tmp_path):
    from app.costs.catalog import load_catalog

    make_dataset("tickets", chat_examples(20))
    shipped = load_catalog(use_settings=False).gpus
    unpriced = "".join(f"[gpus.{k}]\nprices = []\nowned = false\n" for k in shipped)
    prices = tmp_path / "prices.toml"
    prices.write_text(unpriced)
    out = ftm("estimate", "tickets", "--provider", "local", prices=prices)
    assert out.exit_code == 1
    fields = re.search(r"as \[gpus\.NAME\] with (.+)$", out.output.strip()).group(1)
    names = re.findall(r"[a-z_0-9]+", fields.replace(" and ", ", "))
    prices.write_text(unpriced + "[gpus.mine]\n" + "".join(f"{n} = 80\n" for n in names))
    out = ftm("estimate", "tickets", "--provider", "local", "--json", prices=prices)
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["options"][1]["training"]["gpu"] == "mine"


def test_no_dataset_yet_points_at_data_add_which_works(ftm, tmp_path):
    out = ftm("estimate", "tickets")
    assert out.exit_code == 1 and "add one with `ftm data add FILE`" in out.output
    data = tmp_path / "tickets.jsonl"
    data.write_text("".join(json.dumps(e) + "\n" for e in chat_examples(30)))
    assert ftm("data", "add", str(data)).exit_code == 0
    assert ftm("estimate", "tickets").exit_code == 0


def test_a_launch_estimate_for_an_unknown_dataset_id_points_at_data_list(ftm, make_dataset):
    from app.costs.errors import CostError
    from app.costs.launch import estimate_for_launch

    make_dataset("tickets", chat_examples(20))
    with pytest.raises(CostError, match="list them with `ftm data list`"):
        estimate_for_launch(dataset_id=99, provider="openai", base_model="gpt-4o-mini")
    out = ftm("data", "list")
    assert out.exit_code == 0 and "tickets" in out.output


def test_counts_intake_did_not_record_are_made_again_from_the_dataset(make_dataset):
    from sqlmodel import delete

    from app.costs.dataset_inputs import local_model_counts, token_counts
    from app.database import get_engine
    from db.engine import read_session, write_session
    from db.models import TokenCount

    ds = make_dataset("tickets", chat_examples(30))
    with read_session(get_engine()) as s:
        stored = token_counts(s, ds).counts.copy()
    with write_session(get_engine()) as s:
        s.exec(delete(TokenCount))
    with read_session(get_engine()) as s:
        again = token_counts(s, ds)
        local = local_model_counts(s, ds, "meta-llama/Llama-3.1-8B")
    assert again.counts.tolist() == stored.tolist()  # intake's own counter, same numbers
    assert local.counts.tolist() == stored.tolist() and local.approximate_for


def test_a_dataset_whose_files_are_gone_is_fixed_by_restoring_them(ftm, make_dataset, tmp_path):
    ds = make_dataset("tickets", chat_examples(20))
    backup = tmp_path / "backup"
    directory = get_settings().file_store.local_path(ds.data_dir)
    shutil.move(directory, backup)
    out = ftm("estimate", "tickets")
    assert out.exit_code == 1 and f"{ds.data_dir}/train.jsonl is not under the storage root" in (
        " ".join(out.output.split())
    )
    shutil.move(backup, directory)
    assert ftm("estimate", "tickets").exit_code == 0
