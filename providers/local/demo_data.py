"""A small labelling task (which category does the thing named belong to?) in OpenAI chat
format, plus a tiny preference set: data for `ftm demo`, the tests and the benches.

Deterministic for a seed; no download.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SYSTEM = "Label the thing named in the sentence: animal, fruit or color."

CATEGORIES: dict[str, tuple[str, ...]] = {
    "animal": ("cat", "dog", "horse", "sheep", "tiger", "mouse", "rabbit", "goat"),
    "fruit": ("apple", "banana", "cherry", "mango", "peach", "grape", "lemon", "melon"),
    "color": ("red", "blue", "green", "purple", "yellow", "orange", "pink", "brown"),
}

VAGUE_ANSWERS = ("I am not sure.", "It could be anything.", "Hard to say.")

_FRAMES = (
    "I saw the {w} yesterday.",
    "There is a {w} near the door.",
    "My friend likes the {w} a lot.",
    "Look at that {w} over there.",
    "We talked about the {w} today.",
    "She pointed at the {w} again.",
    "Is the {w} still here?",
    "Nobody expected a {w} at noon.",
)


def labelling_examples(n: int, seed: int = 0, start: int = 0) -> list[dict]:
    """``n`` chat examples: system prompt, a sentence naming a thing, its category.

    The examples are slices of one shuffled list of every (thing, sentence) pair, so
    slices at different ``start`` of the same ``seed`` never share an example (a held-out
    set stays held out). Past the end the list wraps around.
    """
    pairs = [(label, w, f) for label, words in CATEGORIES.items() for w in words for f in _FRAMES]
    random.Random(seed).shuffle(pairs)
    out = []
    for i in range(start, start + n):
        label, word, frame = pairs[i % len(pairs)]
        out.append(
            {
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": frame.format(w=word)},
                    {"role": "assistant", "content": label},
                ]
            }
        )
    return out


def preference_examples(n: int, seed: int = 0) -> list[dict]:
    """``n`` single-turn preference pairs in OpenAI's DPO format: the label is preferred
    over a vague non-answer."""
    rng = random.Random(seed)
    out = []
    for ex in labelling_examples(n, seed):
        right = ex["messages"][-1]["content"]
        wrong = rng.choice(VAGUE_ANSWERS)
        out.append(
            {
                "input": {"messages": ex["messages"][:-1]},
                "preferred_output": [{"role": "assistant", "content": right}],
                "non_preferred_output": [{"role": "assistant", "content": wrong}],
            }
        )
    return out


def corpus_texts() -> list[str]:
    """Texts to train the tiny tokenizer on: every sentence and label the tasks can use."""
    texts = [SYSTEM, *CATEGORIES, *VAGUE_ANSWERS]
    for label, words in CATEGORIES.items():
        for w in words:
            texts.extend(f.format(w=w) for f in _FRAMES)
            # Category words in context: pre-training then gives them a usable output
            # embedding (the task itself is never shown in chat form).
            texts.append(f"The word {w} names a kind of {label}.")
    return texts


def write_jsonl(path: str | Path, rows: list[dict]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
