"""Property-based fuzzing of the parser: any bytes give a report, never an exception, and
every problem carries a line number inside the file (0 for the file as a whole)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.datasets.check import check_file
from app.datasets.report import SEVERITY

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
roles = st.sampled_from(["system", "user", "assistant", "tool", "function", "robot", "", None, 3])
messages = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "role": roles,
            "content": st.none() | st.text(max_size=30) | json_values,
            "weight": st.sampled_from([0, 1, 2, 0.5, True, "1"]),
            "name": st.text(max_size=5),
            "tool_calls": json_values,
            "extra": json_values,
        },
    ),
    max_size=4,
)
examples = st.one_of(
    st.fixed_dictionaries(
        {"messages": messages}, optional={"tools": json_values, "parallel_tool_calls": json_values}
    ),
    st.fixed_dictionaries(
        {}, optional={"instruction": json_values, "input": json_values, "output": json_values}
    ),
    st.fixed_dictionaries(
        {"input": st.fixed_dictionaries({"messages": messages})},
        optional={"preferred_output": messages, "non_preferred_output": messages},
    ),
    json_values,
)
lines = st.one_of(
    examples.map(lambda e: json.dumps(e).encode()),
    st.binary(max_size=40),
    st.sampled_from([b"", b"   ", b"\xef\xbb\xbf{}", b"\xff\xfe", b"{", b"[]", b"null", b"\r"]),
)


def _assert_sane(report, n_lines: int) -> None:
    assert report.verdict in ("ok", "warnings", "errors")
    for problem in report.problems:
        assert isinstance(problem.line, int) and 0 <= problem.line <= max(n_lines, 1)
        assert problem.category in SEVERITY and problem.message
    assert sum(report.counts_by_category.values()) >= len(report.problems)
    report.to_dict()  # serialisable, no exception


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(lines, max_size=15))
def test_any_lines_give_a_report(tmp_path, rows):
    path = tmp_path / "fuzz.jsonl"
    data = b"\n".join(rows)
    path.write_bytes(data)
    report = check_file(path)
    _assert_sane(report, data.count(b"\n") + 1)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=300))
def test_any_bytes_give_a_report(tmp_path, data):
    path = tmp_path / "bytes.jsonl"
    path.write_bytes(data)
    report = check_file(path)
    _assert_sane(report, data.count(b"\n") + 1)


CORPUS = {
    "deeply_nested.jsonl": b'{"messages": ' + b"[" * 2000 + b"]" * 2000 + b"}\n",
    "deep_but_valid_json.jsonl": b'{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "tools": '
    + b"[" * 300
    + b"]" * 300
    + b"}\n",
    "huge_int.jsonl": b'{"messages": [{"role": "user", "content": 123456789012345678901234567890}]}\n',
    "nan.jsonl": b'{"messages": NaN}\n',
    "crlf.jsonl": b'{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\r\n'
    * 3,
    "nul_bytes.jsonl": b"\x00\x00\x00\n{\x00}\n",
    "lone_surrogate.jsonl": b'{"messages": [{"role": "user", "content": "\\ud800"}, {"role": "assistant", "content": "b"}]}\n',
    "only_bom.jsonl": b"\xef\xbb\xbf",
    "only_newlines.jsonl": b"\n\n\n",
    "utf16.jsonl": '{"messages": []}\n'.encode("utf-16"),
    "string_per_line.jsonl": b'"just a string"\n"another"\n',
    "unterminated.jsonl": b'{"messages": [{"role": "user", "content": "abc\n',
}


def test_malformed_corpus(tmp_path):
    for name, data in CORPUS.items():
        path = tmp_path / name
        path.write_bytes(data)
        report = check_file(path)
        _assert_sane(report, data.count(b"\n") + 1)
        assert report.verdict == "errors", name
