"""Every action of every screen and view is bound to a key, so it is reachable from the
keyboard and (through the bindings) from the command palette and the help screen."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from textual.dom import DOMNode

import app.tui


def _tui_classes():
    for info in pkgutil.walk_packages(app.tui.__path__, "app.tui."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, DOMNode) and cls.__module__ == info.name:
                yield cls


def _bound_actions(cls) -> set[str]:
    names = set()
    for klass in cls.__mro__:
        for binding in getattr(klass, "BINDINGS", []) or []:
            action = binding.action if hasattr(binding, "action") else binding[1]
            names.add(action.split("(")[0].split(".")[-1])
    return names


def test_every_action_has_a_key():
    unbound = []
    for cls in _tui_classes():
        own = {
            name.removeprefix("action_")
            for name, _ in inspect.getmembers(cls)
            if name.startswith("action_") and name in _defined_in_app(cls)
        }
        missing = own - _bound_actions(cls)
        unbound += [f"{cls.__module__}.{cls.__name__}.action_{m}" for m in sorted(missing)]
    assert not unbound, "actions with no key (so not in help or the palette): " + ", ".join(unbound)


def _defined_in_app(cls) -> set[str]:
    """Action methods defined by ftm's classes (not inherited from Textual)."""
    names = set()
    for klass in cls.__mro__:
        if klass.__module__.startswith("app."):
            names |= {n for n in vars(klass) if n.startswith("action_")}
    return names
