"""Dataset intake: validate a JSONL training file, count its tokens, find duplicates and
leakage, check label balance, split it, and store it as a versioned dataset.

Entry points: `app.datasets.check.check_file` (a report for any input, never a traceback)
and `app.datasets.store.add_dataset` (check, normalize, split and record in the database).
"""
