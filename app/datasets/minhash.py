"""Near-duplicate detection: MinHash signatures over word 3-gram shingles, banded LSH.

Everything is vectorised with numpy over a batch of texts at once: substring hashes come
from a polynomial prefix hash of the batch's bytes (uint64 arithmetic wraps, which is the
modulus we want), so no Python loop runs per shingle. Signatures hold 64 bins of 8 bits
each: 64 bytes per example, small enough to hold a million-example file's signatures in
memory. Chance-equal 8-bit values raise a similarity estimate by at most 1/255, far below
the estimator's own noise (about 0.05 at a similarity of 0.85).
"""

from __future__ import annotations

import numpy as np

NUM_PERM = 64
BANDS = 16
ROWS = NUM_PERM // BANDS  # 4 rows x 8 bits = one uint32 key per band
SHINGLE_WORDS = 3

_P = np.uint64(0x100000001B3)  # odd, so invertible modulo 2**64
_P_INV = np.uint64(pow(int(_P), -1, 2**64))
_rng = np.random.default_rng(0x5EED)
_A = _rng.integers(1, 2**63, NUM_PERM, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
_B = _rng.integers(0, 2**63, NUM_PERM, dtype=np.uint64)
EMPTY = np.iinfo(np.uint8).max


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: spreads every input bit over the output."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


_power_tables: dict[int, np.ndarray] = {}


def _powers(base: np.uint64, n: int) -> np.ndarray:
    """base**0 .. base**(n-1) modulo 2**64, from a table grown by doubling."""
    table = _power_tables.get(int(base))
    if table is None or table.size < n:
        size = max(n, 2 * (table.size if table is not None else 1 << 16))
        table = np.full(size, base, dtype=np.uint64)
        table[0] = 1
        table = np.cumprod(table, dtype=np.uint64)
        _power_tables[int(base)] = table
    return table[:n]


def _word_hashes(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """A hash of each word data[starts[i]:ends[i]] from its length and its first and last
    8 bytes: one gather at word positions each, never a pass per byte. Two words collide
    only when they agree on all three, which at worst makes two texts look a bit closer."""
    padded = np.concatenate([data, np.zeros(8, np.uint8)])
    # Element i of this view is the 8 bytes starting at byte i (an unaligned, overlapping view).
    at = np.ndarray(shape=(data.size,), dtype="<u8", buffer=padded, strides=(1,))
    lengths = ends - starts
    keep_bits = np.minimum(lengths, 8).astype(np.uint64) * np.uint64(8)
    mask = np.where(
        keep_bits >= 64,
        np.uint64(2**64 - 1),
        (np.uint64(1) << (keep_bits & np.uint64(63))) - np.uint64(1),
    )
    head = at[starts] & mask
    tail = at[np.maximum(ends - 8, starts)] & mask
    return _mix(_mix(head ^ lengths.astype(np.uint64)) * _P + tail)


_ASCII_LOWER = np.arange(256, dtype=np.uint8)
_ASCII_LOWER[65:91] += 32


def shingle_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every word 3-gram of each text, ignoring case (ASCII) and how words are
    spaced.

    Returns (hashes, owner): owner[i] is the index of the text shingle i comes from. A
    text of one or two words is a single shingle; an empty text has none.
    """
    joined = ("\0" + "\0".join(texts) + "\0").encode("utf-8", "surrogatepass")
    data = np.frombuffer(joined, dtype=np.uint8)
    nul = np.flatnonzero(data == 0)
    if nul.size != len(texts) + 1:  # a text holds a NUL character itself: clean them
        texts = [t.replace("\0", " ") for t in texts]
        joined = ("\0" + "\0".join(texts) + "\0").encode("utf-8", "surrogatepass")
        data = np.frombuffer(joined, dtype=np.uint8)
        nul = np.flatnonzero(data == 0)
    data = _ASCII_LOWER[data]  # one gather instead of compare, compare, where
    sep = (data <= 32).view(np.int8)  # NUL, spaces, tabs, newlines, control characters
    edge = np.diff(sep)  # -1 where a word starts, +1 just past where one ends
    starts = np.flatnonzero(edge == -1) + 1
    ends = np.flatnonzero(edge == 1) + 1  # exclusive
    if starts.size == 0:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    words = _word_hashes(data, starts, ends)
    owner_of_word = np.searchsorted(nul, starts, side="right") - 1
    n_words = np.bincount(owner_of_word, minlength=len(texts))
    first_of_text = np.cumsum(n_words) - n_words
    last_word = (first_of_text + n_words - 1)[owner_of_word]
    idx = np.arange(starts.size)
    # A shingle combines SHINGLE_WORDS consecutive word hashes, position-weighted.
    shingles = words.copy()
    for k in range(1, SHINGLE_WORDS):
        shifted = np.minimum(idx + k, last_word)
        step = np.where(idx + k <= last_word, words[shifted], np.uint64(0))
        shingles = shingles * _P + step
    keep = (idx + SHINGLE_WORDS - 1 <= last_word) | (idx == first_of_text[owner_of_word])
    return _mix(shingles[keep]), owner_of_word[keep]


def signatures(texts: list[str], batch: int = 2048) -> np.ndarray:
    """MinHash signatures, shape (len(texts), NUM_PERM), uint8; EMPTY rows for empty texts.

    One-permutation hashing with densification (Shrivastava & Li, 2014): each shingle is
    hashed once; its top bits choose one of NUM_PERM bins and the next 8 bits are its
    value; a bin keeps the minimum; an empty bin borrows from the next non-empty bin to its
    right. One hash per shingle instead of NUM_PERM keeps this cheap next to tokenizing.
    """
    out = np.full((len(texts), NUM_PERM), EMPTY, dtype=np.uint8)
    for lo in range(0, len(texts), batch):
        hashes, owner = shingle_hashes(texts[lo : lo + batch])
        if hashes.size == 0:
            continue
        cell = owner * NUM_PERM + (hashes >> np.uint64(58)).astype(np.int64)
        values = np.minimum((hashes >> np.uint64(50)) & np.uint64(0xFF), EMPTY - 1)
        block = np.full(min(batch, len(texts) - lo) * NUM_PERM, EMPTY, dtype=np.uint8)
        np.minimum.at(block, cell, values.astype(np.uint8))
        out[lo : lo + batch] = _densify(block.reshape(-1, NUM_PERM))
    return out


def _densify(sig: np.ndarray) -> np.ndarray:
    """Fill each empty bin from the nearest non-empty bin to its right (wrapping round)."""
    empty = sig == EMPTY
    if not empty.any():
        return sig
    doubled = np.concatenate([sig, sig], axis=1)
    pos = np.where(np.concatenate([~empty, ~empty], axis=1), np.arange(2 * NUM_PERM), 2 * NUM_PERM)
    nearest = np.minimum.accumulate(pos[:, ::-1], axis=1)[:, ::-1][:, :NUM_PERM]
    has_any = ~empty.all(axis=1)
    filled = np.take_along_axis(doubled, np.minimum(nearest, 2 * NUM_PERM - 1), axis=1)
    return np.where(has_any[:, None], filled, sig)


def similarity(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of rows of two signature arrays."""
    return (sig_a == sig_b).mean(axis=-1)


def near_duplicate_pairs(
    sigs: np.ndarray, threshold: float, candidates_mask: np.ndarray | None = None
) -> np.ndarray:
    """Pairs (first, other, similarity) of examples whose estimated Jaccard similarity is at
    least `threshold`; `first` is the earliest example of an LSH bucket.

    Linear in the number of examples: each bucket pairs its members with its first member
    only, so a cluster of k copies yields k-1 pairs, not k^2/2. Temporaries are a few
    bytes per example per band, never a copy of the signatures.
    """
    keys = sigs.view(np.uint32)  # (n, BANDS): 4 bins of 8 bits make one band key
    empty_key = np.uint32(0xFFFFFFFF)
    valid = (keys != empty_key).any(axis=1)  # an empty text has every bin EMPTY
    if candidates_mask is not None:
        valid &= candidates_mask
    ids = np.flatnonzero(valid)
    if ids.size < 2:
        return np.empty((0, 3))
    found = []
    for band in range(BANDS):
        k = keys[ids, band]
        order = np.argsort(k, kind="stable")
        ks = k[order]
        new_group = np.empty(ks.size, bool)
        new_group[0] = True
        np.not_equal(ks[1:], ks[:-1], out=new_group[1:])
        del k, ks
        if new_group.all():
            continue
        group_first = np.maximum.accumulate(np.where(new_group, np.arange(new_group.size), 0))
        member = np.flatnonzero(~new_group)
        first, other = ids[order[group_first[member]]], ids[order[member]]
        del order, group_first, member, new_group
        # Verify this band's candidates now, in slices: only true pairs are kept, so
        # memory does not grow with the (possibly many) chance collisions.
        for lo in range(0, first.size, _VERIFY_CHUNK):
            a, b = first[lo : lo + _VERIFY_CHUNK], other[lo : lo + _VERIFY_CHUNK]
            sims = similarity(sigs[a], sigs[b])
            ok = sims >= threshold
            if ok.any():
                found.append(np.column_stack([a[ok], b[ok], sims[ok]]))
    if not found:
        return np.empty((0, 3))
    pairs = np.concatenate(found)
    _, unique_rows = np.unique(pairs[:, :2].astype(np.int64), axis=0, return_index=True)
    return pairs[np.sort(unique_rows)]


_VERIFY_CHUNK = 65_536
