"""Every bound action, listed from the bindings themselves: for the help screen and the
command palette.

Nothing here is hand-written per action: `key_actions` walks the screen in front (every
tab of the main screen, the app's global keys) and reads the `BINDINGS` of ftm's own
widgets, so a view that adds a binding appears in the help and the palette at once.
Textual's own widget keys (cursor moves in a table, editing in an input) are left out:
they are the same in every app and would bury ours.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

from textual.app import App
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode
from textual.screen import Screen
from textual.widgets import TabPane

GLOBAL_AREA = "Global"
_OUR_PACKAGE = "app."


@dataclass(frozen=True)
class KeyAction:
    """One action reachable by a key: where it applies, its keys, and what it does."""

    area: str
    """Where the keys work: "Global", a tab title, or a screen's name."""
    keys: tuple[str, ...]
    """Keys as displayed (e.g. ``("?", "f1")``)."""
    description: str
    action: str
    node: DOMNode
    """The node that runs the action (the action's namespace)."""
    binding_id: str | None = None

    @property
    def keys_display(self) -> str:
        return " / ".join(self.keys)


def key_actions(app: App, screen: Screen) -> list[KeyAction]:
    """Every action bound on ``screen`` (by area) followed by the app's global ones.

    The app's keys are left out on a modal screen, where Textual does not run them.
    """
    found: list[KeyAction] = []
    screen_area = _screen_area(screen)
    if screen_area != GLOBAL_AREA:
        found += _node_actions(app, screen, screen_area)
    for pane in screen.query(TabPane):
        area = pane._title.plain
        for node in pane.walk_children(with_self=False):
            if _is_ours(node):
                found += _node_actions(app, node, area)
    for node in screen.walk_children(with_self=False):
        if _is_ours(node) and not _inside_tab_pane(node):
            found += _node_actions(app, node, _screen_area(screen))
    if not screen.is_modal:
        found += _node_actions(app, app, GLOBAL_AREA, include_textual=True)
    if screen_area == GLOBAL_AREA:  # the main screen's own keys are Textual's: list them last
        found += _node_actions(app, screen, screen_area)
    return _dedupe(found)


def _screen_area(screen: Screen) -> str:
    title = getattr(screen, "AREA", None) or screen.title
    if title and title != screen.app.title:
        return title
    if screen is screen.app.screen_stack[0]:
        return GLOBAL_AREA
    return _humanise(type(screen).__name__)


def _humanise(class_name: str) -> str:
    out = "".join(f" {c}" if c.isupper() else c for c in class_name).strip()
    return out.removesuffix(" Screen") or class_name


def _is_ours(node: DOMNode) -> bool:
    return type(node).__module__.startswith(_OUR_PACKAGE)


def _inside_tab_pane(node: DOMNode) -> bool:
    return any(isinstance(a, TabPane) for a in node.ancestors)


def _node_actions(
    app: App, node: DOMNode, area: str, *, include_textual: bool = False
) -> Iterator[KeyAction]:
    """The node's bindings, one entry per action (its keys joined)."""
    bindings_map = node._bindings.copy()
    if app._keymap:  # the user's remapped keys, as Textual applies them
        bindings_map.apply_keymap(app._keymap)
    by_action: dict[tuple[str, str], list] = {}
    for _key, binding in bindings_map:
        if binding.system and not include_textual:
            continue
        if not binding.description and binding.system:
            continue  # Textual's hidden helpers (e.g. ctrl+c's "press ctrl+q" hint)
        by_action.setdefault((binding.action, binding.description), []).append(binding)
    for (action, description), bindings in by_action.items():
        keys = tuple(dict.fromkeys(_display_key(app, b) for b in bindings))
        yield KeyAction(
            area=area,
            keys=keys,
            description=_describe(description, action),
            action=action,
            node=node,
            binding_id=bindings[0].id,
        )


def _display_key(app: App, binding) -> str:
    # Textual's own display of each key: a key_display set on a multi-key binding would
    # show one key's text for all of them.
    from dataclasses import replace

    return app.get_key_display(replace(binding, key_display=None))


def _describe(description: str, action: str) -> str:
    if description and description.lower() != "palette":
        return description
    if action == "command_palette":
        return "Command palette"
    return action.split("(")[0].replace("_", " ").capitalize()


def _dedupe(actions: list[KeyAction]) -> list[KeyAction]:
    seen: set[tuple[int, str, str]] = set()
    unique = []
    for a in actions:
        key = (id(a.node), a.action, a.area)
        if key not in seen:
            seen.add(key)
            unique.append(a)
    return unique


def command_title(action: KeyAction) -> str:
    """The palette entry's text, e.g. "Jobs: Cancel job"."""
    if action.area == GLOBAL_AREA:
        return action.description
    return f"{action.area}: {action.description}"


class FtmCommands(Provider):
    """Offers every bound action of the screen the palette was opened from."""

    def _actions(self) -> list[KeyAction]:
        return [
            a
            for a in key_actions(self.app, self.screen)
            if a.action not in {"command_palette", "help_quit"}
        ]

    def _run(self, action: KeyAction) -> None:
        self.app.call_later(self.app.run_action, action.action, action.node)

    async def discover(self) -> Hits:
        for action in self._actions():
            yield DiscoveryHit(
                command_title(action),
                partial(self._run, action),
                help=f"key: {action.keys_display}",
            )

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for action in self._actions():
            title = command_title(action)
            score = matcher.match(title)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(title),
                    partial(self._run, action),
                    help=f"key: {action.keys_display}",
                )
