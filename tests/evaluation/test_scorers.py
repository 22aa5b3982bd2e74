"""Scorers on hand-made cases."""

from __future__ import annotations

import json

import pytest

from app.evaluation.general import general_items
from app.evaluation.scorers import ScorerError, build_scorer, default_scorer_specs, normalize


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("Billing", "billing", True),
        ("  billing.  ", "billing", True),
        ('"billing"', "billing", True),
        ("`Refund`.", "refund", True),
        ("the  quick\nfox", "The quick fox", True),
        ("billing", "billings", False),
        ("", "billing", False),
    ],
)
def test_normalized_exact_match(a, b, same):
    assert build_scorer("exact").score(a, b) == float(same)
    assert (normalize(a) == normalize(b)) is same


def test_label_accuracy_and_confusion_table():
    scorer = build_scorer("label", labels=["billing", "technical", "account"])
    pairs = [
        ("billing", "Billing"),
        ("billing", "technical"),
        ("technical", "technical."),
        ("account", "I think it is about the account"),
    ]
    assert [scorer.score(out, exp) for exp, out in pairs] == [1.0, 0.0, 1.0, 0.0]
    assert scorer.confusion(pairs) == {
        "account": {"(other)": 1},
        "billing": {"billing": 1, "technical": 1},
        "technical": {"technical": 1},
    }


def test_json_validity_accepts_fenced_json_and_rejects_prose():
    scorer = build_scorer("json")
    assert scorer.kind == "format"
    assert scorer.score('{"a": 1}', None) == 1.0
    assert scorer.score('```json\n{"a": 1}\n```', None) == 1.0
    assert scorer.score("Sure! {a: 1}", None) == 0.0
    assert scorer.score("", None) == 0.0


def test_json_schema_compliance(tmp_path):
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    path = tmp_path / "person.schema.json"
    path.write_text(json.dumps(schema))
    scorer = build_scorer(f"json_schema:{path}")
    assert scorer.score('{"name": "Ada", "age": 36}', None) == 1.0
    assert scorer.score('{"name": "Ada", "age": "36"}', None) == 0.0
    assert scorer.score('{"name": "Ada"}', None) == 0.0
    assert scorer.score("not json", None) == 0.0


def test_json_schema_errors_are_clear(tmp_path):
    with pytest.raises(ScorerError, match="no schema file"):
        build_scorer(f"json_schema:{tmp_path / 'missing.json'}")
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": 12}')
    with pytest.raises(ScorerError, match="not a valid JSON schema"):
        build_scorer(f"json_schema:{bad}")


def test_regex_format_check():
    scorer = build_scorer(r"regex:[A-Z]{3}-\d{4}")
    assert scorer.score("ABC-1234", None) == 1.0
    assert scorer.score(" ABC-1234\n", None) == 1.0
    assert scorer.score("ABC-1234 is the code", None) == 0.0
    with pytest.raises(ScorerError, match="not a valid regular expression"):
        build_scorer("regex:([unclosed")


def test_unknown_scorer_names_the_choices():
    with pytest.raises(ScorerError, match="use exact, label, json"):
        build_scorer("bleu")


def _length_scorer(output, expected):
    return len(output) <= 5


def test_plugin_scorer_from_the_entry_point_group(tmp_path, monkeypatch):
    """A distribution on sys.path whose entry_points.txt registers ``short`` (as pip
    leaves it): found through importlib.metadata, nothing patched. The full round trip,
    pip install and a separate ftm process, is in tests/jobs/test_plugin_distribution.py."""
    dist = tmp_path / "ftm_short_scorer-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ftm-short-scorer\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[ftm.scorers]\nshort = {__name__}:_length_scorer\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    scorer = build_scorer("plugin:short")
    assert scorer.spec == "plugin:short"
    assert scorer.score("tiny", None) == 1.0
    assert scorer.score("much too long", None) == 0.0
    with pytest.raises(ScorerError, match="installed: short"):
        build_scorer("plugin:missing")


def test_default_scorers():
    assert default_scorer_specs(["a", "b"], ["a", "b"]) == ["label"]
    assert default_scorer_specs(["free text"], None) == ["exact"]
    assert default_scorer_specs(['{"a": 1}', "[1]"], None) == ["exact", "json"]


def test_general_set_is_shipped_and_checkable():
    items = general_items()
    assert 20 <= len(items) <= 30
    assert len({i.id for i in items}) == len(items)
    by_id = {i.id: i for i in items}
    assert by_id["arith-1"].score("The answer is 42.") == 1.0
    assert by_id["arith-1"].score("41") == 0.0
    assert by_id["arith-6"].score("1,024") == 1.0
    assert by_id["capital-1"].score("Paris.") == 1.0
    assert by_id["capital-1"].score("Lyon") == 0.0
    assert by_id["format-1"].score("OK") == 1.0
    assert by_id["format-1"].score("ok") == 0.0
    assert by_id["format-3"].score('{"color":"blue"}') == 1.0
    assert by_id["format-3"].score('{"colour": "blue"}') == 0.0
    assert by_id["fact-2"].score("au") == 1.0
