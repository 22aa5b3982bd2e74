"""What `ftm data synth` keeps and drops, reply by reply (the real Synthesizer over a
real ticket dataset's splits), and that Ctrl-C keeps what was made."""

from __future__ import annotations

import json

import pytest

from app import database
from app.datasets.store import load_examples
from app.datasets.synth import SynthError, Synthesizer, SynthSettings
from app.datasets.synth_service import synthesize
from app.jobs.providers import make_provider
from tests.datasets.synth_fixtures import TEACHER, sandbox, tickets  # noqa: F401  (fixture)
from tests.evaluation.sandbox_fixtures import SYSTEM


def _reply(user: str, label: str) -> str:
    return json.dumps(
        {
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": user},
                {"role": "assistant", "content": label},
            ]
        }
    )


@pytest.fixture
def synth(tmp_path):
    source = tickets(tmp_path)
    return Synthesizer(
        load_examples(source, "train"),
        load_examples(source, "validation"),
        SynthSettings(count=4),
        threshold=0.85,
    )


def test_each_reason_to_drop_a_reply(synth):
    # Long, so that another label alone does not make it a new example.
    fresh = " ".join(f"my laptop fan number {i} rattles when the backup starts" for i in range(9))
    assert synth.quotas == {"account": 1, "billing": 1, "shipping": 1, "technical": 1}
    assert synth.judge("Sure! Here is one:") == (None, "unparseable")
    assert synth.judge('{"messages": [{"role": "user", "content": "hi"}]}') == (None, "format")
    assert synth.judge(_reply(fresh, "hardware")) == (None, "label_not_in_set")
    assert synth.judge(_reply(fresh + " " + "word " * 70_000, "technical")) == (None, "too_long")
    seed = synth.train[0]
    assert synth.judge(json.dumps(seed)) == (None, "near_duplicate_of_seed")
    leak = synth._exact["near_duplicate_of_validation"]
    assert leak and synth.judge(next(iter(leak)).decode()) == (
        None,
        "near_duplicate_of_validation",
    )
    example, reason = synth.judge("```json\n" + _reply(fresh, "technical") + "\n```")
    assert reason is None and example["messages"][1]["content"] == fresh
    synth.keep(example)
    assert synth.judge(_reply(fresh, "billing")) == (None, "near_duplicate_of_generated")
    other = "the courier left my parcel at the wrong house down the street"
    assert synth.judge(_reply(other, "technical")) == (None, "label_quota_full")
    assert synth.shortfall() == {"account": 1, "billing": 1, "shipping": 1}
    assert synth.target_label() == "account"


class InterruptedTeacher:
    """The real sandbox provider; the user presses Ctrl-C during request ``at``."""

    def __init__(self, inner, at: int) -> None:
        self._inner, self._at, self.calls = inner, at, 0
        self.prompts: list[str] = []

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def complete(self, *args, **kwargs):
        self.calls += 1
        self.prompts.append(args[1][-1].content)
        if self.calls == self._at:
            raise KeyboardInterrupt
        return self._inner.complete(*args, **kwargs)


@pytest.mark.usefixtures("sandbox")
def test_ctrl_c_keeps_what_was_generated(tmp_path):
    source = tickets(tmp_path)
    teacher = InterruptedTeacher(make_provider("openai", engine=database.get_engine()), at=15)
    result = synthesize("tickets", "openai", TEACHER, SynthSettings(count=40), provider=teacher)
    assert result.progress.stopped == "interrupted"
    assert result.progress.attempts == 14
    assert result.created and result.dataset.n_examples == result.progress.kept >= 10
    assert result.lineage["result"]["stopped"] == "interrupted"
    assert result.shortfall  # the quotas of 10 per label are not met
    # Seeds come from the train split only: no validation example is shown to the teacher.
    shown = "\n".join(teacher.prompts)
    for example in load_examples(source, "validation"):
        assert example["messages"][1]["content"] not in shown
    assert sum(e["messages"][1]["content"] in shown for e in load_examples(source, "train"))


def _extraction(name: str, age) -> dict:
    return {
        "messages": [
            {"role": "user", "content": f"extract the person from: {name} turned {age} today"},
            {"role": "assistant", "content": json.dumps({"name": name, "age": age})},
        ]
    }


def test_a_reply_failing_the_tasks_scorer_format_is_dropped(tmp_path):
    train = [_extraction(f"person{i}", 20 + i) for i in range(12)]
    schema = tmp_path / "person.schema.json"
    schema.write_text(
        json.dumps(
            {
                "type": "object",
                "required": ["name", "age"],
                "properties": {"age": {"type": "integer"}},
            }
        )
    )
    implied = Synthesizer(train, [], SynthSettings(count=3), threshold=0.85)
    assert [s.name for s in implied.scorers] == ["json"]  # every seed reply is JSON
    prose = _extraction("Zed", 40)
    prose["messages"][1]["content"] = "Zed, aged 40"
    assert implied.judge(json.dumps(prose)) == (None, "fails_scorer_format")

    schemed = Synthesizer(
        train,
        [],
        SynthSettings(count=3, scorers=(f"json_schema:{schema}",)),
        threshold=0.85,
    )
    assert schemed.judge(json.dumps(_extraction("Ann", "forty"))) == (None, "fails_scorer_format")
    example, reason = schemed.judge(json.dumps(_extraction("Ann", 40)))
    assert reason is None and json.loads(example["messages"][1]["content"])["age"] == 40


def test_a_quality_scorer_is_refused_as_a_format(tmp_path):
    with pytest.raises(SynthError, match="judges answers, not their form"):
        Synthesizer(
            [_extraction("a", 1), _extraction("b", 2)],
            [],
            SynthSettings(count=1, scorers=("exact",)),
            threshold=0.85,
        )
