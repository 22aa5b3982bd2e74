"""Discover providers through the ``ftm.providers`` entry-point group.

Built-in providers register the same way as third-party ones (pyproject.toml). A plugin
that fails to import is reported in `broken` and skipped; it never stops ftm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points

from providers.base import Provider

ENTRY_POINT_GROUP = "ftm.providers"


@dataclass
class ProviderRegistry:
    classes: dict[str, type[Provider]] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)
    """Entry-point name -> why it could not be loaded."""

    def register(self, cls: type[Provider], name: str | None = None) -> None:
        self.classes[name or cls.name] = cls

    def unregister(self, name: str) -> None:
        self.classes.pop(name, None)

    def get(self, name: str) -> type[Provider]:
        try:
            return self.classes[name]
        except KeyError:
            known = ", ".join(sorted(self.classes)) or "none"
            hint = f" (it failed to load: {self.broken[name]})" if name in self.broken else ""
            raise KeyError(f"unknown provider {name!r}{hint}; known providers: {known}") from None

    def names(self) -> list[str]:
        return sorted(self.classes)


def discover() -> ProviderRegistry:
    """Load every provider entry point; report, do not raise, on broken ones."""
    registry = ProviderRegistry()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Provider)):
                raise TypeError(f"{ep.value} is not a Provider subclass")
        except Exception as exc:  # a plugin may fail in any way; ftm must go on
            registry.broken[ep.name] = f"{type(exc).__name__}: {exc}"
            continue
        registry.register(cls, ep.name)
    return registry
