"""A tiny Llama-architecture model with its own small tokenizer, built offline in seconds.

Used by the tests, `ftm demo` and the benches: a real causal LM that transformers, peft
and trl load like any hub model (safetensors weights, a fast tokenizer, a chat template
with ``{% generation %}`` markers so trl can mask the loss to assistant tokens), but with
a few hundred thousand parameters so it trains on a CPU in seconds.

The tokenizer is a byte-level BPE trained on the texts given; the model weights are
random (seeded): fine-tuning is what teaches it anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

# The end-of-turn token closes every message; it is also the EOS, so generation stops at
# the end of the assistant's turn. It sits inside the generation markers: trl then trains
# the model to emit it (otherwise the model would never learn to stop).
END = "<|end|>"
PAD = "<pad>"
UNK = "<unk>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\n' }}{% generation %}{{ message['content'] + '<|end|>' }}{% endgeneration %}"
    "{{ '\n' }}"
    "{% else %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def build_tokenizer(texts: Iterable[str], vocab_size: int = 512):
    """A byte-level BPE tokenizer trained on ``texts``, with the chat template set."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = [PAD, UNK, END, *ROLE_TOKENS]
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        unk_token=UNK,
        eos_token=END,
        additional_special_tokens=list(ROLE_TOKENS),
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "right"
    return fast


def build_tiny_model(
    out_dir: str | Path,
    texts: Iterable[str],
    *,
    vocab_size: int = 512,
    hidden_size: int = 64,
    intermediate_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    max_positions: int = 512,
    pretrain_steps: int = 150,
    seed: int = 0,
) -> Path:
    """Build a Llama and a tokenizer trained on ``texts``; save both to ``out_dir``.

    The model is briefly pre-trained (``pretrain_steps`` of plain language modelling on
    the texts, a few seconds on a CPU): a purely random model has an output layer too
    weak for an adapter to make confident predictions, unlike any real base model.

    Returns the directory, loadable with ``AutoModelForCausalLM.from_pretrained`` and
    ``AutoTokenizer.from_pretrained``.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    texts = list(texts)
    tokenizer = build_tokenizer(texts, vocab_size=vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    texts = list(texts)
    if pretrain_steps:
        _pretrain(model, tokenizer, texts, pretrain_steps, seed)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "ftm_tiny_model.json").write_text(
        json.dumps({"built_by": "providers.local.tiny_model", "seed": seed}) + "\n"
    )
    return out


def _pretrain(model, tokenizer, texts: list[str], steps: int, seed: int) -> None:
    """Plain next-token training on ``texts`` (whole set per step: it is tiny)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    enc = tokenizer([t + tokenizer.eos_token for t in texts], return_tensors="pt", padding=True)
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    batch = min(64, len(texts))
    for _ in range(steps):
        idx = torch.randperm(len(texts), generator=g)[:batch]
        loss = model(
            input_ids=enc["input_ids"][idx],
            attention_mask=enc["attention_mask"][idx],
            labels=labels[idx],
        ).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
