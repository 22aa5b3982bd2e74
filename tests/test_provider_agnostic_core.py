"""The core never decides by a provider's name: app/ (the sandbox aside, which emulates
one provider by design) holds no comparison or membership test against a provider-name
literal. Provider-specific facts are declared on the contract (providers/base.py) and
app/ asks the provider for them."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"
# The emulators name the services they emulate by design; nothing else in app/ may (the
# `ftm sandbox` command too reads declared `Emulation` fields, not names).
EXCLUDED = (APP / "sandbox",)
PROVIDER_NAMES = frozenset({"openai", "local", "together", "azure"})


def _names_in(node: ast.AST) -> set[str]:
    """Provider-name literals ``node`` is or holds (a string, or a tuple/list/set of them)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value.lower()} & PROVIDER_NAMES
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return set().union(*(_names_in(element) for element in node.elts))
    return set()


def provider_name_decisions(source: str, filename: str = "<source>") -> list[str]:
    """``file:line: text`` of every decision on a provider-name literal in ``source``:
    ``==``/``!=``/``in``/``is`` comparisons and ``match`` cases."""
    found = []
    lines = source.splitlines()
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            hit = set().union(*(_names_in(operand) for operand in operands))
        elif isinstance(node, ast.MatchValue):
            hit = _names_in(node.value)
        else:
            continue
        if hit:
            found.append(f"{filename}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    return found


def test_scanner_catches_each_kind_of_decision():
    cases = [
        'if job.provider == "local": pass',
        'ok = "openai" != kind',
        'if provider in ("openai", "azure"): pass',
        'if p not in ["together"]: pass',
        'match provider:\n    case "local":\n        pass',
        'if kind == "Local": pass',
    ]
    for case in cases:
        assert provider_name_decisions(case), case
    # Names as data (labels, registry keys, messages) are not decisions.
    assert not provider_name_decisions('NAME = "openai"\nprint("local")\nd = {"local": 1}')
    assert not provider_name_decisions('if kind == "hosted": pass')


def test_app_never_decides_on_a_provider_name():
    found = []
    for path in sorted(APP.rglob("*.py")):
        if any(path.is_relative_to(excluded) for excluded in EXCLUDED):
            continue
        found += provider_name_decisions(path.read_text(encoding="utf-8"), str(path))
    assert not found, (
        "app/ decides on a provider's name; ask the provider instead (a capability flag or a "
        "member declared in providers/base.py):\n" + "\n".join(found)
    )
