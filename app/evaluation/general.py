"""The general-ability check: a small set of general prompts with checkable answers
(arithmetic, capitals, facts, simple format-following), written for ftm and shipped as
``general_ability.jsonl``. Base and fine-tuned models answer the same prompts; a drop
after fine-tuning is catastrophic forgetting.

Each item names how its answer is checked, so a model that answers "Paris." or
"The capital is Paris" for a capital still scores, while "Lyon" does not:

- ``number``   the first number in the output equals the answer
- ``contains`` the answer appears as a whole word (case-insensitive)
- ``exact``    normalized exact match
- ``regex``    the stripped output fully matches the answer pattern
- ``json``     the output parses to the same JSON value as the answer
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from app.evaluation.scorers import normalize, parse_json_output

GENERAL_SET_PATH = Path(__file__).with_name("general_ability.jsonl")
SUITE = "general"


@dataclass(frozen=True)
class GeneralItem:
    id: str
    prompt: str
    answer: str
    check: str

    def score(self, output: str) -> float:
        return float(_CHECKS[self.check](output or "", self.answer))


def _first_number(text: str) -> float | None:
    # Thousands separators ("1,024") are dropped before looking for the number.
    match = re.search(r"-?\d+(?:\.\d+)?", text.replace(",", ""))
    return float(match.group()) if match else None


def _check_number(output: str, answer: str) -> bool:
    value = _first_number(output)
    return value is not None and abs(value - float(answer)) < 1e-9


def _check_contains(output: str, answer: str) -> bool:
    return re.search(rf"\b{re.escape(answer.casefold())}\b", output.casefold()) is not None


def _check_json(output: str, answer: str) -> bool:
    try:
        return parse_json_output(output) == json.loads(answer)
    except (ValueError, TypeError):
        return False


_CHECKS = {
    "number": _check_number,
    "contains": _check_contains,
    "exact": lambda output, answer: normalize(output) == normalize(answer),
    "regex": lambda output, answer: re.fullmatch(answer, output.strip()) is not None,
    "json": _check_json,
}


@cache
def general_items() -> tuple[GeneralItem, ...]:
    """The shipped general-ability items, in file order."""
    items = []
    for line_no, line in enumerate(GENERAL_SET_PATH.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        raw = json.loads(line)
        if raw["check"] not in _CHECKS:  # guards the shipped file itself (tested)
            raise ValueError(f"{GENERAL_SET_PATH.name}:{line_no}: unknown check {raw['check']!r}")
        items.append(GeneralItem(raw["id"], raw["prompt"], raw["answer"], raw["check"]))
    return tuple(items)
