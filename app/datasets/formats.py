"""The three accepted example formats: detection, validation by OpenAI's rules, and
normalization to the stored form.

- chat: ``{"messages": [...], "tools"?: [...], "parallel_tool_calls"?: bool}``
- instruction: ``{"instruction": str, "input"?: str, "output": str}``, stored as chat
- preference (DPO): ``{"input": {"messages": [...]}, "preferred_output": [assistant msg],
  "non_preferred_output": [assistant msg]}``

Validation returns ``(category, message)`` pairs; the caller adds the line number.
"""

from __future__ import annotations

from typing import Any

CHAT = "chat"
INSTRUCTION = "instruction"
PREFERENCE = "preference"
FORMATS = (CHAT, INSTRUCTION, PREFERENCE)

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
MESSAGE_KEYS = frozenset(
    {"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call", "refusal"}
)
CHAT_KEYS = frozenset({"messages", "tools", "parallel_tool_calls", "functions", "metadata"})
INSTRUCTION_KEYS = frozenset({"instruction", "input", "output", "system"})
PREFERENCE_KEYS = frozenset({"input", "preferred_output", "non_preferred_output", "metadata"})

Issue = tuple[str, str]


def detect_format(example: Any) -> str | None:
    """The format a parsed line looks like; None for a non-object (a data_type problem).

    Anything that is neither preference- nor instruction-shaped is judged as chat, so a
    stray object is reported as missing its messages list, as OpenAI's recipe does.
    """
    if not isinstance(example, dict):
        return None
    if (
        "preferred_output" in example
        or "non_preferred_output" in example
        or isinstance(example.get("input"), dict)
    ):
        return PREFERENCE
    if "messages" not in example and ("instruction" in example or "output" in example):
        return INSTRUCTION
    return CHAT


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


SYSTEM_ROLES = frozenset({"system", "developer"})
"""Roles that set the model's instructions: newer models take "developer" for "system"."""
PLAIN_ROLES = SYSTEM_ROLES | {"user", "assistant"}


def _plainly_valid(messages: Any) -> bool:
    """The common case, checked fast: only role and non-empty string content, and an
    assistant turn. Anything else goes through the full rules."""
    if type(messages) is not list or not messages:
        return False
    has_assistant = False
    for m in messages:
        if type(m) is not dict or len(m) != 2:
            return False
        content, role = m.get("content"), m.get("role")
        if type(content) is not str or not content or role not in PLAIN_ROLES:
            return False
        has_assistant = has_assistant or role == "assistant"
    return has_assistant


def validate_messages(
    messages: Any, where: str = "messages", need_assistant: bool = True
) -> list[Issue]:
    """OpenAI's recipe checks on one messages list, plus weights and tool-call shapes."""
    if need_assistant and _plainly_valid(messages):
        return []
    if not isinstance(messages, list) or not messages:
        return [
            (
                "missing_messages_list",
                f"'{where}' must be a non-empty list of messages, got {_describe(messages)}",
            )
        ]
    issues: list[Issue] = []
    n_assistant = 0
    for i, message in enumerate(messages):
        at = f"{where}[{i}]"
        if not isinstance(message, dict):
            issues.append(("data_type", f"{at} must be an object, got {_describe(message)}"))
            continue
        role = message.get("role")
        if "role" not in message or (
            "content" not in message
            and "tool_calls" not in message
            and "function_call" not in message
        ):
            missing = "role" if "role" not in message else "content"
            issues.append(("message_missing_key", f"{at} has no '{missing}'"))
        unknown = sorted(k for k in message if k not in MESSAGE_KEYS)
        if unknown:
            issues.append(
                (
                    "message_unrecognized_key",
                    f"{at} has unrecognized key(s) {', '.join(map(repr, unknown))}",
                )
            )
        if "role" in message and role not in ROLES:
            issues.append(
                (
                    "unrecognized_role",
                    f"{at} has role {_describe(role)}; expected one of {', '.join(ROLES)}",
                )
            )
        content = message.get("content")
        has_call = bool(message.get("tool_calls") or message.get("function_call"))
        if isinstance(content, list):
            if not content or not all(isinstance(p, dict) for p in content):
                issues.append(("missing_content", f"{at} has empty or malformed content parts"))
        elif isinstance(content, str):
            if not content and not has_call:
                issues.append(("missing_content", f"{at} has empty content"))
        elif content is not None or ("content" in message and not has_call):
            issues.append(
                (
                    "missing_content",
                    f"{at} content must be a non-empty string, got {_describe(content)}",
                )
            )
        if "weight" in message:
            weight = message["weight"]
            if role != "assistant":
                issues.append(
                    ("invalid_weight", f"{at}: 'weight' is only allowed on assistant messages")
                )
            elif isinstance(weight, bool) or weight not in (0, 1):
                issues.append(
                    ("invalid_weight", f"{at}: weight must be 0 or 1, got {_describe(weight)}")
                )
        if "tool_calls" in message and not _valid_tool_calls(message["tool_calls"]):
            issues.append(
                (
                    "invalid_tools",
                    f"{at}: tool_calls must be a list of {{id, type: 'function', function: {{name, arguments}}}}",
                )
            )
        if role == "assistant":
            n_assistant += 1
    if need_assistant and n_assistant == 0:
        issues.append(
            (
                "example_missing_assistant_message",
                f"'{where}' has no assistant message to learn from",
            )
        )
    return issues


_NO_SYSTEM: Issue = (
    "missing_system_message",
    "no system message; if the model will be prompted with one, train with it too",
)
_NO_USER: Issue = (
    "missing_user_message",
    "no user message; the model learns replies without a prompt to answer",
)


def missing_turns(has_system: bool, has_user: bool) -> list[Issue]:
    """The two warnings of OpenAI's data-prep recipe: a chat example with no system
    message, and one with no user message."""
    if has_system and has_user:
        return []
    return ([] if has_system else [_NO_SYSTEM]) + ([] if has_user else [_NO_USER])


def chat_missing_turns(messages: list) -> list[Issue]:
    """`missing_turns` of a valid chat example's messages."""
    roles = {m.get("role") for m in messages if isinstance(m, dict)}
    return missing_turns(bool(roles & SYSTEM_ROLES), "user" in roles)


def _valid_tool_calls(calls: Any) -> bool:
    if not isinstance(calls, list) or not calls:
        return False
    for call in calls:
        if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
            return False
        if not isinstance(call["function"].get("name"), str):
            return False
    return True


def _validate_tools(example: dict) -> list[Issue]:
    issues: list[Issue] = []
    tools = example.get("tools")
    if "tools" in example:
        ok = isinstance(tools, list) and all(
            isinstance(t, dict)
            and t.get("type") == "function"
            and isinstance(t.get("function"), dict)
            and isinstance(t["function"].get("name"), str)
            for t in tools
        )
        if not ok:
            issues.append(
                (
                    "invalid_tools",
                    "'tools' must be a list of {type: 'function', function: {name, parameters}}",
                )
            )
    if "parallel_tool_calls" in example and not isinstance(example["parallel_tool_calls"], bool):
        issues.append(("invalid_tools", "'parallel_tool_calls' must be true or false"))
    return issues


def _unknown_keys(example: dict, allowed: frozenset) -> list[Issue]:
    unknown = sorted(k for k in example if k not in allowed)
    if not unknown:
        return []
    return [("unrecognized_key", f"unrecognized top-level key(s) {', '.join(map(repr, unknown))}")]


def validate_example(example: Any, fmt: str) -> list[Issue]:
    """Every rule the example breaks, for the file's format."""
    if not isinstance(example, dict):
        return [("data_type", f"each line must be a JSON object, got {type(example).__name__}")]
    if fmt == INSTRUCTION:
        return _validate_instruction(example)
    if fmt == PREFERENCE:
        return _validate_preference(example)
    issues = validate_messages(example.get("messages"))
    if len(example) > 1:
        issues += _validate_tools(example) + _unknown_keys(example, CHAT_KEYS)
    return issues


def _validate_instruction(example: dict) -> list[Issue]:
    issues: list[Issue] = []
    for key in ("instruction", "output"):
        if key not in example:
            issues.append(("message_missing_key", f"instruction example has no '{key}'"))
        elif not isinstance(example[key], str) or not example[key].strip():
            issues.append(
                (
                    "missing_content",
                    f"'{key}' must be a non-empty string, got {_describe(example[key])}",
                )
            )
    for key in ("input", "system"):
        if key in example and example[key] is not None and not isinstance(example[key], str):
            issues.append(
                ("missing_content", f"'{key}' must be a string, got {_describe(example[key])}")
            )
    return issues + _unknown_keys(example, INSTRUCTION_KEYS)


def _validate_preference(example: dict) -> list[Issue]:
    issues: list[Issue] = []
    prompt = example.get("input")
    if not isinstance(prompt, dict):
        issues.append(
            ("missing_messages_list", "preference example needs 'input': {\"messages\": [...]}")
        )
    else:
        issues += validate_messages(prompt.get("messages"), "input.messages", need_assistant=False)
        issues += _validate_tools(prompt)
        msgs = prompt.get("messages")
        if (
            isinstance(msgs, list)
            and msgs
            and isinstance(msgs[-1], dict)
            and msgs[-1].get("role") == "assistant"
        ):
            issues.append(
                (
                    "invalid_preference",
                    "input.messages must end with a user turn, not an assistant reply",
                )
            )
    for key in ("preferred_output", "non_preferred_output"):
        out = example.get(key)
        if key not in example:
            issues.append(("message_missing_key", f"preference example has no '{key}'"))
        elif not (
            isinstance(out, list)
            and len(out) == 1
            and isinstance(out[0], dict)
            and out[0].get("role") == "assistant"
        ):
            issues.append(
                ("invalid_preference", f"'{key}' must be a list with exactly one assistant message")
            )
        else:
            issues += [(c, m) for c, m in validate_messages(out, key) if c != "invalid_weight"]
    return issues + _unknown_keys(example, PREFERENCE_KEYS)


def normalize(example: dict, fmt: str) -> dict:
    """The stored form: chat stays chat, instruction becomes chat, preference stays."""
    if fmt != INSTRUCTION:
        return example
    user = example["instruction"]
    if example.get("input"):
        user = f"{user}\n\n{example['input']}"
    messages = []
    if example.get("system"):
        messages.append({"role": "system", "content": example["system"]})
    messages += [
        {"role": "user", "content": user},
        {"role": "assistant", "content": example["output"]},
    ]
    return {"messages": messages}


def token_messages(example: dict) -> list[dict]:
    """The messages whose tokens count for a normalized example (both outputs for DPO)."""
    if "messages" in example:
        return example["messages"]
    return (
        list(example["input"]["messages"])
        + list(example["preferred_output"])
        + list(example["non_preferred_output"])
    )


def tools_of(example: dict) -> Any:
    return example.get("tools") if "messages" in example else example["input"].get("tools")


def similarity_text(example: dict) -> str:
    """The text near-duplicate detection compares: every non-system message's content.

    System prompts are left out because most datasets share one; counting it would make
    every pair of examples look alike.
    """
    parts = []
    for m in token_messages(example):
        if m.get("role") in ("system", "developer"):
            continue
        content = m.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif content is not None or m.get("tool_calls"):
            parts.append(repr(content if content is not None else m.get("tool_calls")))
    return "\n".join(parts)


LABEL_MAX_CHARS = 40
LABEL_MAX_WORDS = 4


def label_of(example: dict) -> str | None:
    """The final assistant reply when it is short enough to be a class label, else None."""
    if "messages" in example:
        messages = example["messages"]
    else:
        messages = example.get("preferred_output") or []
    for m in reversed(messages):
        if m.get("role") == "assistant":
            return reply_label(m.get("content"))
    return None


def reply_label(content: Any) -> str | None:
    """An assistant reply's text as a class label, when it is short enough to be one."""
    if not isinstance(content, str):
        return None
    label = content.strip()
    if 0 < len(label) <= LABEL_MAX_CHARS and len(label.split()) <= LABEL_MAX_WORDS:
        return label
    return None
