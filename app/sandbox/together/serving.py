"""What the Together emulator serves for inference: ``GET /models`` and
``POST /chat/completions`` (with ``stream: true``: the same completion as server-sent
chunks in Together's dialect, see ``streamed``).

Together no longer serves LoRA fine-tunes serverlessly: a fine-tuned model answers only
on a dedicated endpoint (endpoints.py), so a chat with one no STARTED endpoint serves is
refused with a message that says so, as the service does; through a STARTED endpoint (its
name, or the model it serves) a fine-tune answers from its training examples, exactly as
the OpenAI emulator's fine-tunes do. An emulator started with serve_fine_tunes
behaves as if each finished fine-tune had a STARTED endpoint under its own name, so
evaluations, gates and migrations that involve a Together fine-tune need no endpoint
step. Base models answer as the OpenAI emulator's do
(app/sandbox/responder.py: few-shot turns, else a fixed generic sentence).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from app.sandbox.errors import ApiError, invalid
from app.sandbox.responder import Memory, base_model_reply, fine_tuned_reply
from app.sandbox.together.catalog import MODELS, TINY_MODEL, TOKENIZER_PROXY
from app.sandbox.training_data import count_message_tokens
from providers.chat_stream import ChunkMaker, completion_chunks, event_stream

MODEL_CREATED = 1_721_692_800  # 2024-07-23, Llama 3.1's release: a fixed, plausible time
# Serverless inference, $ per million tokens (input, output): the emulator's own figures,
# published-looking but not a quote, like rates.py.
INFERENCE_RATES = {
    "meta-llama/Llama-3.2-1B-Instruct": (0.06, 0.06),
    "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference": (0.18, 0.18),
    "meta-llama/Meta-Llama-3.1-70B-Instruct-Reference": (0.88, 0.88),
    TINY_MODEL: (0.01, 0.01),
}


def list_models(fine_tuned: list[str]) -> list[dict[str, Any]]:
    """``ModelInfoList``: the base models, then the account's finished fine-tunes (served
    on dedicated endpoints only, so no per-token price)."""
    listed = []
    for name in MODELS:
        rate_in, rate_out = INFERENCE_RATES[name]
        listed.append(
            {
                "id": name,
                "object": "model",
                "created": MODEL_CREATED,
                "type": "chat",
                "display_name": name.split("/")[-1],
                "organization": name.split("/")[0],
                "context_length": 131072,
                "pricing": {
                    "hourly": 0,
                    "input": rate_in,
                    "output": rate_out,
                    "base": 0,
                    "finetune": 0,
                },
            }
        )
    for name in fine_tuned:
        listed.append({"id": name, "object": "model", "created": MODEL_CREATED, "type": "chat"})
    return listed


def chat(
    body: Any,
    fine_tuned: set[str],
    new_id: str,
    created: int,
    limit_default: int = 512,
    served: dict[str, Memory | None] | None = None,
) -> dict[str, Any]:
    """A chat completion from a base model or a model ``served`` by a STARTED endpoint
    (name -> its fine-tune's memory, None for a base model), or the refusal for any
    other model."""
    served = served or {}
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    model = body.get("model")
    messages = body.get("messages")
    if not isinstance(model, str) or not model:
        raise invalid("Missing required parameter: 'model'.", param="model")
    if not isinstance(messages, list) or not messages:
        raise invalid("Missing required parameter: 'messages'.", param="messages")
    if model in fine_tuned and model not in served:
        raise ApiError(
            400,
            f"Unable to access model {model}: fine-tuned models are served on a dedicated "
            "endpoint only; create one with POST /v1/endpoints and call it by its name.",
            param="model",
            code="model_not_available",
        )
    if model not in MODELS and model not in served:
        raise ApiError(
            404, f"Unable to access model {model}.", param="model", code="model_not_found"
        )
    from app.tokens import encoding_for_model

    memory = served.get(model)
    if memory is not None:
        reply = fine_tuned_reply(memory, model, messages)
    else:
        reply = base_model_reply(model, messages)
    encoding = encoding_for_model(TOKENIZER_PROXY)
    tokens = encoding.encode(reply, disallowed_special=())
    limit = body.get("max_tokens") or limit_default
    finish = "eos"
    if len(tokens) > limit:
        tokens, finish = tokens[:limit], "length"
        reply = encoding.decode(tokens)
    prompt_tokens = count_message_tokens(messages, TOKENIZER_PROXY)
    return {
        "id": new_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "prompt": [],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply},
                "finish_reason": finish,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(tokens),
            "total_tokens": prompt_tokens + len(tokens),
        },
    }


def streamed(completion: dict[str, Any]) -> Iterator[bytes]:
    """A completion from ``chat`` as Together streams it: ``chat.completion.chunk``
    events whose every delta names the role, the finishing chunk carrying the usage
    (Together sends it unasked), then ``data: [DONE]``."""
    maker = ChunkMaker(
        completion["id"],
        completion["created"],
        completion["model"],
        role_in_every_delta=True,
        usage_on_finish=True,
    )
    return event_stream(completion_chunks(completion, maker, include_usage=False))
