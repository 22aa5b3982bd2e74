"""Scorers: each turns (model output, expected answer) into a score in [0, 1].

Built-in scorers are named by a short spec string, which is what eval configs store so a
run can be reproduced from the database:

- ``exact``            normalized exact match (case, whitespace, quotes, final period)
- ``label``            label accuracy for categorical tasks (plus a confusion table)
- ``json``             the output parses as JSON
- ``json_schema:PATH`` the output parses and validates against the JSON schema in PATH
- ``regex:PATTERN``    the whole output matches PATTERN (a format check)
- ``plugin:NAME``      a user scorer registered in the ``ftm.scorers`` entry-point group

A plugin is either a `Scorer` subclass/instance or a plain function
``(output, expected) -> float | bool``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

SCORER_ENTRY_POINT_GROUP = "ftm.scorers"

OTHER_LABEL = "(other)"
"""Where outputs that are not one of the known labels land in the confusion table."""


class ScorerError(ValueError):
    """A scorer spec that cannot be built (unknown name, bad regex, missing schema...)."""


def normalize(text: str | None) -> str:
    """Normalize an answer for exact comparison: Unicode NFKC, case-folded, whitespace
    collapsed, surrounding quotes/backticks and a trailing period removed."""
    if text is None:
        return ""
    text = unicodedata.normalize("NFKC", text).casefold().strip()
    text = re.sub(r"\s+", " ", text)
    for _ in range(2):  # "'answer'." and "`answer`" both reduce to answer
        text = text.strip().rstrip(".").strip()
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
            text = text[1:-1]
    return text.strip()


class Scorer:
    """A way of scoring one output. Subclasses set ``name``/``kind`` and implement `score`.

    ``kind`` is ``quality`` (does it answer right) or ``format`` (is it well-formed); the
    comparison reports the two separately.
    """

    name: str = "scorer"
    kind: ClassVar[str] = "quality"

    def score(self, output: str, expected: str | None) -> float:  # pragma: no cover
        raise NotImplementedError

    @property
    def spec(self) -> str:
        """The string that rebuilds this scorer with `build_scorer`."""
        return self.name


class ExactMatch(Scorer):
    name = "exact"

    def score(self, output: str, expected: str | None) -> float:
        return float(normalize(output) == normalize(expected))


@dataclass
class LabelAccuracy(Scorer):
    """Accuracy over a fixed label set. An output counts as a label when it normalizes to
    one of them; anything else is wrong and shows as ``(other)`` in the confusion table."""

    labels: list[str] = field(default_factory=list)
    name: str = "label"

    def predicted_label(self, output: str) -> str:
        by_norm = {normalize(label): label for label in self.labels}
        return by_norm.get(normalize(output), OTHER_LABEL)

    def score(self, output: str, expected: str | None) -> float:
        if not self.labels:
            return float(normalize(output) == normalize(expected))
        return float(self.predicted_label(output) == expected)

    def confusion(self, pairs: Iterable[tuple[str | None, str]]) -> dict[str, dict[str, int]]:
        """``{expected: {predicted: count}}`` over (expected, output) pairs."""
        table: dict[str, Counter] = {}
        for expected, output in pairs:
            row = table.setdefault(expected or "", Counter())
            row[self.predicted_label(output) if self.labels else normalize(output)] += 1
        return {exp: dict(sorted(row.items())) for exp, row in sorted(table.items())}


def parse_json_output(output: str) -> Any:
    """Parse a model's JSON answer, tolerating a surrounding ```json fence."""
    text = output.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, flags=re.S)
    if fenced:
        text = fenced.group(1)
    return json.loads(text)


class JsonValid(Scorer):
    name = "json"
    kind = "format"

    def score(self, output: str, expected: str | None) -> float:
        try:
            parse_json_output(output)
        except (ValueError, TypeError):
            return 0.0
        return 1.0


class JsonSchema(Scorer):
    """The output is JSON that validates against a JSON schema (draft chosen by $schema)."""

    kind = "format"

    def __init__(self, schema: dict, source: str) -> None:
        import jsonschema

        try:
            validator_cls = jsonschema.validators.validator_for(schema)
            validator_cls.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ScorerError(f"{source}: not a valid JSON schema: {exc.message}") from None
        self._validator = validator_cls(schema)
        self.source = source
        self.name = f"json_schema:{source}"

    @classmethod
    def from_path(cls, path: str) -> JsonSchema:
        try:
            schema = json.loads(Path(path).expanduser().read_text())
        except FileNotFoundError:
            raise ScorerError(f"json_schema: no schema file at {path}") from None
        except ValueError as exc:
            raise ScorerError(f"json_schema: {path} is not JSON: {exc}") from None
        return cls(schema, path)

    def score(self, output: str, expected: str | None) -> float:
        try:
            value = parse_json_output(output)
        except (ValueError, TypeError):
            return 0.0
        return float(self._validator.is_valid(value))


class RegexFormat(Scorer):
    """The whole (stripped) output matches a regular expression."""

    kind = "format"

    def __init__(self, pattern: str) -> None:
        try:
            self._regex = re.compile(pattern, flags=re.S)
        except re.error as exc:
            raise ScorerError(f"regex:{pattern}: not a valid regular expression: {exc}") from None
        self.name = f"regex:{pattern}"

    def score(self, output: str, expected: str | None) -> float:
        return float(self._regex.fullmatch(output.strip()) is not None)


class PluginScorer(Scorer):
    """Wraps a user scorer loaded from the ``ftm.scorers`` entry-point group."""

    def __init__(self, plugin_name: str, fn: Callable[[str, str | None], Any], kind: str) -> None:
        self._fn = fn
        self.name = f"plugin:{plugin_name}"
        self.kind = kind  # type: ignore[misc]  # a plugin may declare itself "format"

    def score(self, output: str, expected: str | None) -> float:
        value = self._fn(output, expected)
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ScorerError(
                f"{self.name} returned {value!r}; a scorer must return a number in [0, 1] or a bool"
            ) from None
        if not 0.0 <= value <= 1.0:
            raise ScorerError(f"{self.name} returned {value}; scores must lie in [0, 1]")
        return value


def load_plugin(name: str) -> PluginScorer:
    """Load the user scorer ``name`` from the ``ftm.scorers`` entry points."""
    found = [ep for ep in entry_points(group=SCORER_ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        known = sorted(ep.name for ep in entry_points(group=SCORER_ENTRY_POINT_GROUP))
        raise ScorerError(
            f"no scorer plugin named {name!r} in the {SCORER_ENTRY_POINT_GROUP!r} entry-point "
            f"group (installed: {', '.join(known) or 'none'}); register one in your package's "
            f'pyproject: [project.entry-points."{SCORER_ENTRY_POINT_GROUP}"]'
        )
    try:
        obj = found[0].load()
    except Exception as exc:  # a plugin may fail in any way
        raise ScorerError(
            f"scorer plugin {name!r} failed to load: {type(exc).__name__}: {exc}"
        ) from None
    if isinstance(obj, type) and issubclass(obj, Scorer):
        obj = obj()
    if isinstance(obj, Scorer):
        return PluginScorer(name, obj.score, obj.kind)
    if callable(obj):
        return PluginScorer(name, obj, getattr(obj, "kind", "quality"))
    raise ScorerError(f"scorer plugin {name!r} is neither a Scorer nor a function")


def build_scorer(spec: str, *, labels: list[str] | None = None) -> Scorer:
    """Build a scorer from its spec string (see the module docstring)."""
    name, _, arg = spec.partition(":")
    name = name.strip()
    if name == "exact" and not arg:
        return ExactMatch()
    if name == "label" and not arg:
        return LabelAccuracy(labels=sorted(labels or []))
    if name == "json" and not arg:
        return JsonValid()
    if name == "json_schema" and arg:
        return JsonSchema.from_path(arg)
    if name == "regex" and arg:
        return RegexFormat(arg)
    if name == "plugin" and arg:
        return load_plugin(arg)
    raise ScorerError(
        f"unknown scorer {spec!r}; use exact, label, json, json_schema:PATH, regex:PATTERN "
        "or plugin:NAME"
    )


def default_scorer_specs(expected: list[str | None], labels: list[str] | None) -> list[str]:
    """Scorers for a task when the user names none: label accuracy for a categorical
    task, exact match otherwise, plus JSON validity when every answer is JSON."""
    specs = ["label" if labels else "exact"]
    answers = [e for e in expected if e is not None]
    if answers and all(JsonValid().score(a, None) == 1.0 for a in answers):
        specs.append("json")
    return specs
