"""Token counts: OpenAI's recipe, checked against tiktoken directly; a local model's own
tokenizer and chat template."""

from __future__ import annotations

import json

import pytest
import tiktoken

from app.datasets.check import check_file
from app.datasets.tokencount import TiktokenCounter, counter_for, token_limit
from app.tokens import get_encoding
from tests.datasets.helpers import chat, write_jsonl

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


def recipe(messages: list[dict], encoding: tiktoken.Encoding) -> int:
    """The public cookbook's num_tokens_from_messages, written out independently."""
    n = 0
    for message in messages:
        n += 3
        for key, value in message.items():
            n += len(encoding.encode(value))
            if key == "name":
                n += 1
    return n + 3


EXAMPLES = [
    {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Héllo, wörld! 你好 🙂 " * 5},
            {"role": "assistant", "content": "Hi.\n\n```py\nprint(1)\n```"},
        ]
    },
    {
        "messages": [
            {"role": "user", "name": "alice", "content": "  leading and trailing  "},
            {"role": "assistant", "content": "ok"},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "x" * 3000},
            {"role": "assistant", "content": " ".join(str(i) for i in range(500))},
        ]
    },
]


@pytest.mark.parametrize(
    "model, encoding_name",
    [
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4.1-2025-04-14", "o200k_base"),
        ("o4-mini-2025-04-16", "o200k_base"),
        ("gpt-3.5-turbo-0125", "cl100k_base"),
        ("gpt-4-0613", "cl100k_base"),
    ],
)
def test_counts_match_tiktoken_directly(tmp_path, model, encoding_name):
    encoding = get_encoding(encoding_name)
    rows = [
        EXAMPLES[i % 3]
        | {
            "messages": EXAMPLES[i % 3]["messages"]
            + [
                {"role": "user", "content": f"and number {i}"},
                {"role": "assistant", "content": str(i)},
            ]
        }
        for i in range(12)
    ]
    report = check_file(write_jsonl(tmp_path / "d.jsonl", rows), model=model)
    expected = [recipe(r["messages"], encoding) for r in rows]
    assert report.token_stats.tokenizer == f"tiktoken:{encoding_name}"
    assert report.arrays.tokens.tolist() == expected
    assert report.token_stats.total == sum(expected)
    assert report.token_stats.min == min(expected) and report.token_stats.max == max(expected)


def test_counter_cache_gives_the_same_counts_as_a_cold_encode():
    counter = TiktokenCounter("o200k_base")
    encoding = get_encoding("o200k_base")
    for _ in range(3):  # strings move from 'recent' to 'hot' on repeat
        for example in EXAMPLES:
            assert counter.count(example) == recipe(example["messages"], encoding)


def test_distribution_percentiles(tmp_path):
    rows = [chat(i, reply="w " * (i * 10)) for i in range(1, 21)]
    report = check_file(write_jsonl(tmp_path / "d.jsonl", rows))
    counts = sorted(report.arrays.tokens.tolist())
    stats = report.token_stats
    import numpy as np

    assert stats.p50 == pytest.approx(float(np.percentile(counts, 50)), abs=0.1)
    assert stats.p95 == pytest.approx(float(np.percentile(counts, 95)), abs=0.1)
    assert stats.mean == pytest.approx(sum(counts) / 20, abs=0.01)


def test_limits_and_default_model():
    assert token_limit("gpt-4o-mini-2024-07-18") == 65_536
    assert token_limit("ft:gpt-4.1-mini-2025-04-14:acme::abc") == 65_536
    assert token_limit("gpt-3.5-turbo-1106") == 16_385
    assert counter_for(None).key == "tiktoken:o200k_base"


def _tokenizer_dir(path):
    """A small byte-level BPE tokenizer with a chat template, trained here (no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<unk>", "<|end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([json.dumps(chat(i)) for i in range(50)], trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", eos_token="<|end|>", model_max_length=128
    )
    fast.chat_template = (
        "{% for m in messages %}{{ '<|' + m['role'] + '|>' + m['content'] + '<|end|>' }}"
        "{% endfor %}"
    )
    fast.save_pretrained(path)
    return fast


def test_local_model_directory_uses_its_own_tokenizer_and_template(tmp_path):
    model_dir = tmp_path / "model"
    tokenizer = _tokenizer_dir(model_dir)
    rows = [chat(i) for i in range(12)]
    rows[5] = chat(5, reply="long " * 60)  # ~375 tokens: over the tokenizer's 128; the rest ~87
    report = check_file(write_jsonl(tmp_path / "d.jsonl", rows), model=str(model_dir))
    expected = [
        len(
            tokenizer.encode(
                "".join(f"<|{m['role']}|>{m['content']}<|end|>" for m in r["messages"]),
                add_special_tokens=False,
            )
        )
        for r in rows
    ]
    assert report.token_stats.tokenizer == f"hf:{model_dir.resolve()}"
    assert report.arrays.tokens.tolist() == expected
    assert report.token_stats.limit == 128
    assert max(n for i, n in enumerate(expected) if i != 5) < 128 < expected[5]
    over = [p.line for p in report.problems if p.category == "example_over_token_limit"]
    assert over == [6]  # only the long row: the limit is the tokenizer's, not a fixed one


def test_a_chat_template_that_does_not_parse_is_one_file_level_problem(tmp_path):
    model_dir = tmp_path / "model"
    tokenizer = _tokenizer_dir(model_dir)
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}"  # no endfor
    tokenizer.save_pretrained(model_dir)
    report = check_file(
        write_jsonl(tmp_path / "d.jsonl", [chat(i) for i in range(12)]), model=str(model_dir)
    )
    assert report.counts_by_category == {"tokenizer_unavailable": 1}
    message = report.problems[0].message
    assert f"the chat template of {model_dir.resolve()} does not parse" in message
    assert "fix chat_template" in message


def test_examples_the_chat_template_rejects_are_reported_on_their_lines(tmp_path):
    model_dir = tmp_path / "model"
    tokenizer = _tokenizer_dir(model_dir)
    tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('this model takes no system turn') }}{% endif %}"
        "{{ '<|' + m['role'] + '|>' + m['content'] + '<|end|>' }}{% endfor %}"
    )
    tokenizer.save_pretrained(model_dir)
    rows = [{"messages": chat(i)["messages"][1:]} for i in range(12)]
    rows[2], rows[7] = chat(2), chat(7)  # with a system turn
    report = check_file(write_jsonl(tmp_path / "d.jsonl", rows), model=str(model_dir))
    rejected = [p for p in report.problems if p.category == "chat_template_rejected"]
    assert [p.line for p in rejected] == [3, 8]
    assert "this model takes no system turn" in rejected[0].message
    assert report.n_valid == 10 and report.token_stats.n == 10
