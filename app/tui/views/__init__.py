"""The tabs' views."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from textual.css.query import NoMatches


def unless_torn_down(handler: Callable[..., Any]) -> Callable[..., Any]:
    """For a handler that fills a view with a worker's result: when the view is being
    torn down (the app quit while the worker ran; its children go first), the widgets to
    fill are gone and there is nothing to show, so the result is dropped, not an error."""

    @wraps(handler)
    def guarded(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return handler(self, *args, **kwargs)
        except NoMatches:
            if self.display:  # not being torn down (Textual hides a node it removes): a bug
                raise
            return None

    return guarded
