"""Rich renderables for a report dict (`CheckReport.to_dict()` or a stored
`Dataset.report`), shared by the CLI and the TUI."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from app.datasets.report import SEVERITY

VERDICT_STYLE = {"ok": "bold green", "warnings": "bold yellow", "errors": "bold red"}
MAX_PROBLEM_ROWS = 30


def verdict_text(verdict: str) -> Text:
    return Text(verdict, style=VERDICT_STYLE.get(verdict, ""))


def _summary(report: dict[str, Any]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("file", report["path"])
    table.add_row("format", str(report["format"] or "-"))
    table.add_row("model", report["model"])
    table.add_row(
        "examples",
        f"{report['n_valid']:,} valid of {report['n_examples']:,} "
        f"({report['n_lines']:,} lines, {report['size_bytes']:,} bytes)",
    )
    split = report.get("split") or {}
    if split:
        table.add_row(
            "split",
            f"{split['n_train']:,} train / {split['n_validation']:,} validation "
            f"(fraction {split['val_fraction']}, seed {split['seed']}"
            f"{', stratified by label' if split.get('stratified') else ''})",
        )
    table.add_row("verdict", verdict_text(report["verdict"]))
    return table


def _counts(report: dict[str, Any]) -> Table | None:
    counts = report["counts_by_category"]
    if not counts:
        return None
    table = Table(title="Problems by category", title_justify="left")
    table.add_column("category")
    table.add_column("severity")
    table.add_column("count", justify="right")
    for category, n in sorted(counts.items(), key=lambda kv: (SEVERITY[kv[0]] != "error", kv[0])):
        severity = SEVERITY[category]
        table.add_row(
            category, Text(severity, style="red" if severity == "error" else "yellow"), f"{n:,}"
        )
    return table


def _problems(report: dict[str, Any]) -> Table | None:
    problems = report["problems"]
    if not problems:
        return None
    shown = problems[:MAX_PROBLEM_ROWS]
    more = len(problems) - len(shown) + report.get("problems_truncated", 0)
    title = "Problems" + (f" (first {len(shown)}; {more:,} more in --json)" if more > 0 else "")
    table = Table(title=title, title_justify="left")
    table.add_column("line", justify="right")
    table.add_column("category")
    table.add_column("message", overflow="fold")
    for p in shown:
        style = "red" if p["severity"] == "error" else "yellow"
        table.add_row(
            str(p["line"]) if p["line"] else "file", Text(p["category"], style=style), p["message"]
        )
    return table


def _tokens(report: dict[str, Any]) -> Table | None:
    t = report.get("tokens")
    if not t or not t["n"]:
        return None
    table = Table(title=f"Tokens per example ({t['tokenizer']})", title_justify="left")
    for column in ("examples", "total", "min", "mean", "p50", "p95", "max", "limit", "over limit"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{t['n']:,}",
        f"{t['total']:,}",
        f"{t['min']:,}",
        f"{t['mean']:,.1f}",
        f"{t['p50']:,.0f}",
        f"{t['p95']:,.0f}",
        f"{t['max']:,}",
        f"{t['limit']:,}" if t["limit"] else "-",
        f"{t['n_over_limit']:,}",
    )
    return table


def _duplicates(report: dict[str, Any]) -> RenderableType | None:
    d = report.get("duplicates") or {}
    if not d:
        return None
    leakage = d.get("leakage", {})
    lines = [
        f"exact copies: {d['exact_copies']:,} (in {d['exact_groups']:,} groups)   "
        f"near-duplicates: {d['near_pairs']:,} (similarity >= {d['threshold']})   "
        f"train/validation leakage: {leakage.get('count', 0):,}   "
        f"a --dedupe would remove {d['removed_by_dedupe']:,}"
    ]
    table = None
    if d.get("pairs"):
        table = Table(title="Duplicates", title_justify="left")
        table.add_column("line", justify="right")
        table.add_column("same as line", justify="right")
        table.add_column("kind")
        for pair in d["pairs"][:MAX_PROBLEM_ROWS]:
            kind = pair["kind"] if pair["kind"] == "exact" else f"near ({pair['similarity']:.2f})"
            table.add_row(str(pair["line"]), str(pair["duplicate_of"]), kind)
    parts: list[RenderableType] = [Text("Duplicates: " + lines[0])]
    if table is not None:
        parts.append(table)
    return Group(*parts)


def _labels(report: dict[str, Any]) -> Table | None:
    labels = report.get("labels")
    if not labels:
        return None
    total = sum(labels.values())
    table = Table(title="Labels", title_justify="left")
    table.add_column("label")
    table.add_column("examples", justify="right")
    table.add_column("share", justify="right")
    for label, n in labels.items():
        table.add_row(label, f"{n:,}", f"{n / total:.1%}")
    return table


def report_renderable(report: dict[str, Any]) -> Group:
    """The whole report: summary, problem counts, problems, tokens, duplicates, labels."""
    parts = [_summary(report)]
    for build in (_counts, _problems, _tokens, _duplicates, _labels):
        part = build(report)
        if part is not None:
            parts += [Text(""), part]
    return Group(*parts)
