"""Evaluation: score every candidate (base zero-shot, base few-shot, fine-tuned models,
checkpoints) the same way on held-out data and on a general-ability set.

Modules: `scorers` (what a right answer is), `general` (the forgetting check),
`candidates` (how each candidate is prompted), `cache` (rerun costs nothing), `runner`
(runs and stores an eval), `judge` (optional LLM judge with a spending cap), `compare`
(the side-by-side table and flipped examples).
"""
