"""Every validation category, every format, and the file-level cases: a report, never a
traceback."""

from __future__ import annotations

import json

import pytest

from app.datasets.check import check_file
from app.datasets.report import SEVERITY
from tests.datasets.helpers import chat, instruction, lines_of, preference, write_jsonl

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


def ten(make, n=12):
    return [make(i) for i in range(n)]


@pytest.mark.parametrize(
    "make, fmt", [(chat, "chat"), (instruction, "instruction"), (preference, "preference")]
)
def test_each_format_is_detected_and_valid(tmp_path, make, fmt):
    report = check_file(write_jsonl(tmp_path / "d.jsonl", ten(make)))
    assert report.format == fmt
    assert report.verdict == "ok", report.to_dict()["problems"]
    assert report.n_valid == 12
    assert report.token_stats.n == 12 and report.token_stats.total > 0


def test_chat_with_tools_weights_and_tool_calls_is_valid(tmp_path):
    tool = {
        "type": "function",
        "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
    }
    rows = []
    for i in range(12):
        rows.append(
            {
                "tools": [tool],
                "parallel_tool_calls": False,
                "messages": [
                    {"role": "system", "content": "You check the weather."},
                    {"role": "user", "content": f"Weather in city {i}?"},
                    {"role": "assistant", "content": "draft", "weight": 0},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": f"c{i}",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": "{}"},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": f"c{i}", "content": f"{i} degrees"},
                    {"role": "assistant", "content": f"It is {i} degrees.", "weight": 1},
                ],
            }
        )
    report = check_file(write_jsonl(tmp_path / "t.jsonl", rows))
    assert report.verdict == "ok", report.to_dict()["problems"]


CASES = {
    "data_type": b"[1, 2, 3]",
    "missing_messages_list": json.dumps({"messages": []}).encode(),
    "message_missing_key": json.dumps(
        {"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]}
    ).encode(),
    "message_unrecognized_key": json.dumps(
        {
            "messages": [
                {"role": "user", "content": "a", "mood": "ok"},
                {"role": "assistant", "content": "x"},
            ]
        }
    ).encode(),
    "unrecognized_role": json.dumps(
        {"messages": [{"role": "robot", "content": "a"}, {"role": "assistant", "content": "x"}]}
    ).encode(),
    "missing_content": json.dumps(
        {"messages": [{"role": "user", "content": 42}, {"role": "assistant", "content": "x"}]}
    ).encode(),
    "example_missing_assistant_message": json.dumps(
        {"messages": [{"role": "user", "content": "a"}]}
    ).encode(),
    "invalid_json": b'{"messages": [',
    "invalid_weight": json.dumps(
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "x", "weight": 0.5},
            ]
        }
    ).encode(),
    "invalid_tools": json.dumps(
        {
            "tools": "nope",
            "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "x"}],
        }
    ).encode(),
    "invalid_encoding": b'{"messages": "\xff\xfe"}',
    "blank_line": b"   ",
    "missing_system_message": json.dumps(
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "x"}]}
    ).encode(),
    "missing_user_message": json.dumps(
        {"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "x"}]}
    ).encode(),
    "unrecognized_key": json.dumps(
        {
            "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "x"}],
            "extra": 1,
        }
    ).encode(),
}


@pytest.mark.parametrize("category", sorted(CASES))
def test_each_category_is_reported_on_its_line(tmp_path, category):
    rows = ten(chat)
    path = write_jsonl(tmp_path / "d.jsonl", rows, raw_lines={5: CASES[category]})
    report = check_file(path)
    assert lines_of(report, category) == [5], report.to_dict()["problems"]
    assert report.counts_by_category[category] == 1
    expected = "errors" if SEVERITY[category] == "error" else "warnings"
    assert report.verdict == expected
    if expected == "errors":
        first = report.first_error()
        assert (first.line, first.category) == (5, category)


def test_weight_on_a_user_message_is_invalid(tmp_path):
    bad = {
        "messages": [
            {"role": "user", "content": "a", "weight": 1},
            {"role": "assistant", "content": "b"},
        ]
    }
    report = check_file(
        write_jsonl(tmp_path / "d.jsonl", ten(chat), raw_lines={3: json.dumps(bad).encode()})
    )
    assert lines_of(report, "invalid_weight") == [3]


def test_too_few_examples(tmp_path):
    report = check_file(write_jsonl(tmp_path / "d.jsonl", ten(chat, 9)))
    assert report.counts_by_category == {"too_few_examples": 1}
    assert report.verdict == "errors"
    assert report.first_error().line == 0


def test_example_over_the_models_token_limit(tmp_path):
    rows = ten(chat)
    rows[3] = chat(3, reply="word " * 17_000)  # ~17k tokens: over gpt-3.5's 16,385
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    over = check_file(path, model="gpt-3.5-turbo-0125")
    assert lines_of(over, "example_over_token_limit") == [4]
    assert over.token_stats.n_over_limit == 1 and over.token_stats.limit == 16_385
    assert over.token_stats.billable_per_epoch < over.token_stats.total
    assert over.verdict == "warnings"
    fits = check_file(path, model="gpt-4o-2024-08-06")
    assert "example_over_token_limit" not in fits.counts_by_category
    assert fits.token_stats.limit == 65_536


def test_mixed_formats_name_the_first_line_that_differs(tmp_path):
    rows = ten(chat) + [instruction(1), preference(2), instruction(3)]
    report = check_file(write_jsonl(tmp_path / "d.jsonl", rows))
    assert lines_of(report, "mixed_format") == [13]
    mixed = [p for p in report.problems if p.category == "mixed_format"]
    assert "line 13" in mixed[0].message, mixed[0].message
    assert report.format == "chat" and report.n_valid == 12
    assert report.verdict == "errors"


def test_instruction_and_preference_rules(tmp_path):
    bad_instruction = {"instruction": "", "output": "x"}
    report = check_file(
        write_jsonl(
            tmp_path / "i.jsonl",
            ten(instruction),
            raw_lines={2: json.dumps(bad_instruction).encode()},
        )
    )
    assert lines_of(report, "missing_content") == [2]
    two_outputs = preference(0) | {"preferred_output": [{"role": "assistant", "content": "a"}] * 2}
    report = check_file(
        write_jsonl(
            tmp_path / "p.jsonl", ten(preference), raw_lines={4: json.dumps(two_outputs).encode()}
        )
    )
    assert lines_of(report, "invalid_preference") == [4]


@pytest.mark.parametrize(
    "setup, category",
    [
        (lambda p: p, "missing_file"),
        (lambda p: (p.mkdir(), p)[1], "not_a_file"),
        (lambda p: (p.write_bytes(b""), p)[1], "empty_file"),
    ],
)
def test_file_level_problems(tmp_path, setup, category):
    path = setup(tmp_path / "x.jsonl")
    report = check_file(path)
    assert report.counts_by_category == {category: 1}
    assert report.problems[0].line == 0
    assert report.verdict == "errors"
    assert report.to_dict()["verdict"] == "errors"


def test_bom_is_a_warning_and_the_first_line_still_parses(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ten(chat))
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    report = check_file(path)
    assert report.counts_by_category == {"bom": 1}
    assert report.n_valid == 12


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(
        "\n".join(
            json.dumps(chat(i), ensure_ascii=False).replace("Question", "Qüestion")
            for i in range(12)
        ).encode("latin-1")
    )
    report = check_file(path)
    assert report.counts_by_category == {"invalid_encoding": 12, "too_few_examples": 1}
    assert lines_of(report, "invalid_encoding") == list(range(1, 13))


def test_a_50_mb_single_line(tmp_path):
    path = tmp_path / "huge.jsonl"
    with open(path, "wb") as f:
        f.write(b'{"messages": [{"role": "user", "content": "')
        f.write(b"a" * 50_000_000)
        f.write(b'"}]}')  # one line, no newline, no assistant turn
    report = check_file(path)
    assert lines_of(report, "example_missing_assistant_message") == [1]
    assert report.counts_by_category["too_few_examples"] == 1


def test_a_50_mb_line_of_garbage(tmp_path):
    path = tmp_path / "garbage.jsonl"
    path.write_bytes(b"{" + b"x" * 50_000_000)
    report = check_file(path)
    assert lines_of(report, "invalid_json") == [1]
    assert len(report.problems[0].message) < 300


def test_problem_counts_stay_exact_when_listing_is_capped(tmp_path):
    rows = [b"nope"] * 500
    report = check_file(write_jsonl(tmp_path / "d.jsonl", rows))
    assert report.counts_by_category["invalid_json"] == 500
    assert len(lines_of(report, "invalid_json")) == 200
    assert report.to_dict()["problems_truncated"] == 300


def test_unknown_model_is_a_file_level_error(tmp_path):
    report = check_file(write_jsonl(tmp_path / "d.jsonl", ten(chat)), model="llama-9000")
    assert lines_of(report, "tokenizer_unavailable") == [0]
    assert "unknown model 'llama-9000'" in report.problems[0].message


def test_examples_without_a_system_or_a_user_message_are_counted_by_line(tmp_path):
    """OpenAI's data-prep recipe: examples missing a system message, and missing a user
    message, are warned about; both the one-pass and the general path report them."""
    rows = ten(chat, 14)
    no_system = {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    }
    no_user = {
        "messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "x"}]
    }
    neither = {"messages": [{"role": "assistant", "content": "unprompted"}]}
    named = {
        "messages": [
            {"role": "user", "content": "hey", "name": "bo"},  # the general path
            {"role": "assistant", "content": "hello"},
        ]
    }
    developer = {
        "messages": [
            {"role": "developer", "content": "d"},  # stands for system
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a"},
        ]
    }
    for line, row in ((2, no_system), (4, no_user), (6, neither), (9, named), (11, developer)):
        rows[line - 1] = row
    report = check_file(write_jsonl(tmp_path / "d.jsonl", rows))
    assert lines_of(report, "missing_system_message") == [2, 6, 9]
    assert lines_of(report, "missing_user_message") == [4, 6]
    assert report.counts_by_category == {"missing_system_message": 3, "missing_user_message": 2}
    assert report.verdict == "warnings"
    assert SEVERITY["missing_system_message"] == SEVERITY["missing_user_message"] == "warning"


def test_missing_turn_warnings_are_for_chat_files_only(tmp_path):
    for make in (instruction, preference):
        report = check_file(write_jsonl(tmp_path / "d.jsonl", ten(make)))
        assert report.verdict == "ok", report.to_dict()["problems"]
