"""`ftm data synth --task` (a description, no seeds) and `--topic` quotas, end to end
against the OpenAI sandbox emulator (its base model answers a task prompt with a request
built from word lists, seeded by the prompt; see app/sandbox/synth_reply.py)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from app import database
from app.cli.main import cli
from app.datasets.formats import label_of, similarity_text
from app.datasets.minhash import signatures, similarity
from app.datasets.store import get_dataset, load_examples
from db.engine import read_session
from tests.datasets.synth_fixtures import TEACHER, sandbox, tickets  # noqa: F401  (fixture)

TASK = "Route customer support tickets to the team that handles them"


def _synth(*args: str):
    base = ["data", "synth", "--provider", "openai", "--model", TEACHER]
    return CliRunner().invoke(cli, [*base, *args], catch_exceptions=False, env={"COLUMNS": "200"})


@pytest.mark.usefixtures("sandbox")
def test_a_task_description_makes_balanced_distinct_examples_with_its_lineage():
    result = _synth(
        "--task", TASK, "--labels", "billing,shipping,account", "--count", "12", "--json"
    )
    assert result.exit_code == 0, result.output
    lineage = json.loads(result.output)["synth"]
    assert lineage["task"] == TASK
    assert lineage["parent_dataset_id"] is None and lineage["parent_dataset"] is None
    assert lineage["template"] == "synth-task-v1"
    assert lineage["quotas"] == {"account": 4, "billing": 4, "shipping": 4}
    assert lineage["result"]["kept"] == 12
    assert lineage["result"]["kept_by_label"] == {"account": 4, "billing": 4, "shipping": 4}

    with read_session(database.get_engine()) as session:
        made = get_dataset(session, "synth-route-customer-support-tickets-to-the")
    assert made.stats["lineage"] == lineage
    examples = load_examples(made, "train") + load_examples(made, "validation")
    labels = sorted(label_of(e) for e in examples)
    assert labels == ["account"] * 4 + ["billing"] * 4 + ["shipping"] * 4
    # Deduplicated among themselves: no two kept examples nearly alike.
    sigs = signatures([similarity_text(e) for e in examples])
    for i, sig in enumerate(sigs):
        others = [j for j in range(len(sigs)) if j != i]
        assert (similarity(sigs[others], sig[None, :]) < 0.85).all()
    shown = CliRunner().invoke(cli, ["data", "show", made.name], env={"COLUMNS": "200"})
    assert f"made by ftm data synth from task {TASK!r} with teacher openai" in shown.output


@pytest.mark.usefixtures("sandbox")
def test_topics_share_the_count_evenly_and_a_shortfall_is_reported(tmp_path):
    tickets(tmp_path)
    topics = ["--topic", "refunds", "--topic", "delivery", "--topic", "login"]
    result = _synth("--from", "tickets", *topics, "--count", "12", "--json")
    assert result.exit_code == 0, result.output
    lineage = json.loads(result.output)["synth"]
    assert lineage["topic_quotas"] == {"delivery": 4, "login": 4, "refunds": 4}
    assert lineage["result"]["kept_by_topic"] == {"delivery": 4, "login": 4, "refunds": 4}
    assert lineage["topic_shortfall"] is None
    assert lineage["settings"]["topics"] == ["refunds", "delivery", "login"]

    # Too few attempts for 12 over three topics: the topics left short are said, by count.
    short = _synth(
        "--task", TASK, *topics, "--count", "12", "--max-attempts", "10", "--name", "short"
    )
    assert short.exit_code == 0, short.output
    assert "topic quota shortfall: login 1, refunds 1" in short.output
    with read_session(database.get_engine()) as session:
        made = get_dataset(session, "short")
    assert made.stats["lineage"]["topic_shortfall"] == {"login": 1, "refunds": 1}
    # Each request is about the topic its prompt named.
    users = [
        e["messages"][0]["content"]
        for e in load_examples(made, "train") + load_examples(made, "validation")
    ]
    about = {t: sum(f"about {t}:" in u for u in users) for t in ("delivery", "login", "refunds")}
    assert about == {"delivery": 4, "login": 3, "refunds": 3}


@pytest.mark.usefixtures("sandbox")
def test_exactly_one_of_from_and_task_is_a_clear_error(tmp_path):
    tickets(tmp_path)
    for args in (["--from", "tickets", "--task", TASK], []):
        result = _synth(*args, "--count", "2")
        assert result.exit_code != 0
        assert "give exactly one of --from DATASET" in result.output
        assert "Traceback" not in result.output
    result = _synth("--from", "tickets", "--labels", "a,b", "--count", "2")
    assert result.exit_code != 0 and "--labels goes with --task" in result.output


def test_without_seeds_a_repeat_of_a_kept_example_is_dropped():
    from app.datasets.synth import DUPLICATES_KEPT, Synthesizer, SynthSettings
    from app.sandbox.synth_reply import synth_reply

    synth = Synthesizer(
        [], [], SynthSettings(count=4), threshold=0.85, task=TASK, labels=["a", "b"]
    )
    reply = synth_reply(synth.prompt(0, "a")[-1].content)
    example, reason = synth.judge(reply)
    assert reason is None
    synth.keep(example)
    assert synth.judge(reply) == (None, DUPLICATES_KEPT)
    # A request of another number gives another example, which is kept.
    assert synth.judge(synth_reply(synth.prompt(1, "a")[-1].content))[1] is None
