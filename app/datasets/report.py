"""The validation report: problems (each with a line number and a category), token
statistics, duplicates, labels, and a verdict."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

ERROR = "error"
WARNING = "warning"

# Every category a problem can carry, with its severity. Errors make OpenAI reject the
# file (or ftm refuse it); warnings are worth knowing but do not block training.
SEVERITY: dict[str, str] = {
    # The file itself.
    "missing_file": ERROR,
    "not_a_file": ERROR,
    "unreadable_file": ERROR,
    "empty_file": ERROR,
    "tokenizer_unavailable": ERROR,
    "bom": WARNING,
    # One line.
    "blank_line": WARNING,
    "invalid_encoding": ERROR,
    "invalid_json": ERROR,
    "mixed_format": ERROR,
    # OpenAI's public data-preparation recipe.
    "data_type": ERROR,
    "missing_messages_list": ERROR,
    "message_missing_key": ERROR,
    "message_unrecognized_key": ERROR,
    "unrecognized_role": ERROR,
    "missing_content": ERROR,
    "example_missing_assistant_message": ERROR,
    # The rest of OpenAI's rules.
    "invalid_weight": ERROR,
    "invalid_tools": ERROR,
    "invalid_preference": ERROR,
    "unrecognized_key": WARNING,
    "missing_system_message": WARNING,
    "missing_user_message": WARNING,
    "too_few_examples": ERROR,
    "chat_template_rejected": ERROR,
    "example_over_token_limit": WARNING,
    # Data quality.
    "duplicate_example": WARNING,
    "near_duplicate_example": WARNING,
    "train_validation_leakage": WARNING,
    "label_imbalance": WARNING,
}

MIN_EXAMPLES = 10
# A report keeps this many problems of each category in full; the counts stay exact.
MAX_PROBLEMS_PER_CATEGORY = 200


@dataclass(frozen=True)
class Problem:
    """One problem. `line` is 1-based; 0 means the file as a whole."""

    line: int
    category: str
    message: str

    @property
    def severity(self) -> str:
        return SEVERITY[self.category]

    def to_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "category": self.category,
            "severity": self.severity,
            "message": self.message,
        }


@dataclass
class TokenStats:
    """Per-example token distribution for one tokenizer."""

    tokenizer: str
    limit: int | None
    n: int = 0
    total: int = 0
    min: int = 0
    mean: float = 0.0
    p50: float = 0.0
    p95: float = 0.0
    max: int = 0
    n_over_limit: int = 0
    billable_per_epoch: int = 0
    """Sum over examples of min(limit, tokens): what one epoch bills."""


@dataclass
class ProblemLog:
    """Collects problems, keeping a bounded number per category and exact counts."""

    counts: Counter = field(default_factory=Counter)
    kept: list[Problem] = field(default_factory=list)
    kept_counts: Counter = field(default_factory=Counter)

    def add(self, line: int, category: str, message: str) -> None:
        if category not in SEVERITY:
            raise KeyError(f"unknown problem category {category!r}")
        self.counts[category] += 1
        self._keep(Problem(line, category, message))

    def extend(self, other: ProblemLog, line_offset: int = 0) -> None:
        """Merge another log whose line numbers are relative (file-level 0s stay 0)."""
        self.counts.update(other.counts)
        for p in other.kept:
            self._keep(Problem(p.line + line_offset if p.line else 0, p.category, p.message))

    def _keep(self, problem: Problem) -> None:
        if self.kept_counts[problem.category] < MAX_PROBLEMS_PER_CATEGORY:
            self.kept_counts[problem.category] += 1
            self.kept.append(problem)


@dataclass
class CheckReport:
    """Everything `ftm data check` finds about one file."""

    path: str
    format: str | None
    """chat | instruction | preference, or None when no example could be read."""
    n_lines: int
    n_examples: int
    """Lines that parsed as examples of the file's format (valid or not)."""
    n_valid: int
    problems: list[Problem]
    counts_by_category: dict[str, int]
    token_stats: TokenStats | None
    model: str
    size_bytes: int = 0
    duplicates: dict[str, Any] = field(default_factory=dict)
    """exact/near groups (line numbers), leakage pairs, and the cleaned count."""
    labels: dict[str, Any] | None = None
    """{label: count} when assistant replies are short categorical labels."""
    split: dict[str, Any] = field(default_factory=dict)
    """The held-out split the report assumed: val_fraction, seed, n_train, n_validation."""
    elapsed_s: float = 0.0
    arrays: Any = field(default=None, repr=False, compare=False)
    """Per-example arrays (app.datasets.check.ExampleArrays) for add_dataset; not reported."""

    @property
    def verdict(self) -> str:
        """ok | warnings | errors."""
        severities = {SEVERITY[c] for c, n in self.counts_by_category.items() if n}
        if ERROR in severities:
            return "errors"
        if WARNING in severities:
            return "warnings"
        return "ok"

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    def first_error(self) -> Problem | None:
        """The error a server would answer with: the lowest-numbered line's, else a
        file-level one (missing, empty, too few examples)."""
        errors = self.errors
        return min(errors, key=lambda p: (p.line == 0, p.line)) if errors else None

    def to_dict(self) -> dict[str, Any]:
        """The machine-readable report (`ftm data check --json`)."""
        return {
            "path": self.path,
            "model": self.model,
            "format": self.format,
            "verdict": self.verdict,
            "size_bytes": self.size_bytes,
            "n_lines": self.n_lines,
            "n_examples": self.n_examples,
            "n_valid": self.n_valid,
            "counts_by_category": dict(sorted(self.counts_by_category.items())),
            "problems": [p.to_dict() for p in sorted(self.problems, key=lambda p: p.line)],
            "problems_truncated": sum(self.counts_by_category.values()) - len(self.problems),
            "tokens": asdict(self.token_stats) if self.token_stats else None,
            "duplicates": self.duplicates,
            "labels": self.labels,
            "split": self.split,
            "elapsed_s": round(self.elapsed_s, 3),
        }
