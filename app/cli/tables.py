"""One table renderer for the CLI's lists (`ftm jobs list`, `ftm data list`, `ftm compare`,
`ftm estimate`): each row on one line, at any terminal width.

Columns are declared with a priority and a minimum and maximum width. When the natural
widths do not fit, shrinkable columns give up space down to their minimum (cells end in
an ellipsis), and when even the minimums do not fit, the least important columns are
left out and named under the table. Full values stay in each command's ``--json``.

At a terminal the width is the terminal's (or ``COLUMNS``) and headers and cells keep
their colours. Piped, the layout is plain and stable: ``COLUMNS`` or 80 characters, no
ANSI codes, so `grep` and `cut` see the same text every time.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Union

import click

if TYPE_CHECKING:  # rich is imported where a table is drawn, so `ftm --help` stays quick
    from rich.console import Console
    from rich.text import Text

ELLIPSIS = "…"
GAP = "  "
DEFAULT_WIDTH = 80
MIN_WIDTH = 20
"""Below this the terminal is treated as this wide: a table cannot say anything narrower."""

Cell = Union[str, "Text"]


@dataclass(frozen=True)
class Column:
    """A column of a CLI table.

    ``priority``: 0 is never left out; higher numbers are left out first when the
    terminal is too narrow. ``min_width``: how far the column may shrink (cells are cut
    with an ellipsis); ``None`` keeps it at its natural width (figures, statuses).
    ``max_width``: caps it even when there is room. ``cut``: where a long value loses
    characters; "middle" keeps both ends of ids whose tail tells them apart
    (``ft:gpt-4o-mini-2024-07-18:org:suffix:abc123``).
    """

    header: str
    priority: int = 0
    min_width: int | None = None
    max_width: int | None = None
    align: Literal["left", "right"] = "left"
    cut: Literal["end", "middle"] = "end"


def output_width() -> int:
    """Columns to fit: ``COLUMNS`` if set, else the terminal's, else 80 (piped)."""
    return max(MIN_WIDTH, shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns)


def is_terminal() -> bool:
    """Colours only for a person at a terminal; a pipe gets plain text."""
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty())


def console() -> Console:
    """A Rich console for the prose around a table, wrapped at the same width."""
    from rich.console import Console

    return Console(width=output_width(), highlight=False)


def fit(value: Cell, width: int, cut: Literal["end", "middle"] = "end") -> Text:
    """``value`` in at most ``width`` cells; a cut value ends (or is split) with an ellipsis."""
    from rich.cells import cell_len, set_cell_size
    from rich.text import Text

    text = Text(value) if isinstance(value, str) else value.copy()
    text.plain = text.plain.replace("\n", " ")
    if cell_len(text.plain) <= width:
        return text
    if width <= 1:
        return Text(ELLIPSIS[:width], style=text.style)
    if cut == "middle" and width >= 5:
        keep = width - 1
        head = set_cell_size(text.plain, (keep + 1) // 2)
        tail = _last_cells(text.plain, keep - cell_len(head))
        return Text(head + ELLIPSIS + tail, style=text.style)
    text.truncate(width, overflow="ellipsis")
    return text


def _last_cells(plain: str, width: int) -> str:
    from rich.cells import cell_len

    out = ""
    for ch in reversed(plain):
        if cell_len(ch + out) > width:
            break
        out = ch + out
    return out


@dataclass(frozen=True)
class Layout:
    """Which columns are shown, and how wide, for one table at one width."""

    shown: list[int]
    widths: dict[int, int]
    hidden: list[str]


def layout(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], width: int) -> Layout:
    """Widths that fit ``width``: shrink what may shrink, then leave out by priority."""
    from rich.cells import cell_len

    natural, minimum = {}, {}
    for i, col in enumerate(columns):
        widest = max([cell_len(_plain(r[i])) for r in rows] + [cell_len(col.header)])
        natural[i] = min(widest, col.max_width) if col.max_width else widest
        minimum[i] = natural[i] if col.min_width is None else min(natural[i], col.min_width)
    shown = list(range(len(columns)))

    def needed(idx: list[int], sizes: dict[int, int]) -> int:
        return sum(sizes[i] for i in idx) + len(GAP) * (len(idx) - 1)

    # leave out the least important (ties: the rightmost) until the minimums fit
    droppable = sorted(
        (i for i in shown if columns[i].priority > 0),
        key=lambda i: (columns[i].priority, i),
        reverse=True,
    )
    for i in droppable:
        if needed(shown, minimum) <= width:
            break
        shown.remove(i)
    widths = {i: minimum[i] for i in shown}
    spare = max(0, width - needed(shown, widths))
    # spare cells go to the most important squeezed columns first
    for i in sorted(shown, key=lambda i: (columns[i].priority, i)):
        grow = min(spare, natural[i] - widths[i])
        widths[i] += grow
        spare -= grow
    # a terminal too narrow even for the columns that always stay: the widest give way
    while needed(shown, widths) > width and max(widths.values()) > 1:
        widest = max(shown, key=lambda i: widths[i])
        widths[widest] -= 1
    hidden = [columns[i].header for i in range(len(columns)) if i not in shown]
    return Layout(shown, widths, hidden)


def _plain(value: Cell) -> str:
    return (value if isinstance(value, str) else value.plain).replace("\n", " ")


def render_lines(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    *,
    width: int,
    title: str | None = None,
    color: bool = False,
) -> list[Text]:
    """The table as lines of at most ``width`` cells: title, header, rule, one per row,
    and a note naming the columns left out."""
    from rich.text import Text

    plan = layout(columns, rows, width)
    lines: list[Text] = []
    if title:  # a title is prose: it wraps rather than lose its end
        lines += [
            Text(part, style="bold" if color else "")
            for part in textwrap.wrap(title, width, break_on_hyphens=False)
        ]
    lines.append(
        _line(
            [Text(columns[i].header, style="bold" if color else "") for i in plan.shown],
            columns,
            plan,
        )
    )
    rule = "─" if color else "-"
    lines.append(_line([rule * plan.widths[i] for i in plan.shown], columns, plan))
    for row in rows:
        lines.append(_line([row[i] for i in plan.shown], columns, plan))
    if plan.hidden:
        note = f"(left out at {width} columns: {', '.join(plan.hidden)}; --json has all)"
        lines += [Text(part, style="dim" if color else "") for part in textwrap.wrap(note, width)]
    if not color:
        lines = [Text(line.plain) for line in lines]
    return lines


def _line(cells: Sequence[Cell], columns: Sequence[Column], plan: Layout) -> Text:
    from rich.cells import cell_len
    from rich.text import Text

    out = Text()
    for n, (i, value) in enumerate(zip(plan.shown, cells, strict=True)):
        col, w = columns[i], plan.widths[i]
        cell = fit(value, w, col.cut)
        pad = " " * (w - cell_len(cell.plain))
        if n:
            out.append(GAP)
        if col.align == "right":
            out.append(pad)
            out.append_text(cell)
        else:
            out.append_text(cell)
            if n < len(plan.shown) - 1:  # no trailing blanks at the end of a line
                out.append(pad)
    out.rstrip()
    return out


def print_table(
    columns: Sequence[Column], rows: Iterable[Sequence[Cell]], *, title: str | None = None
) -> None:
    """Print a table fitted to the output: coloured at a terminal, plain when piped."""
    rows = list(rows)
    width, color = output_width(), is_terminal()
    lines = render_lines(columns, rows, width=width, title=title, color=color)
    if color:
        from rich.console import Console

        out = Console(width=width, highlight=False)
        for line in lines:
            out.print(line, soft_wrap=True)
    else:
        for line in lines:
            click.echo(line.plain)
