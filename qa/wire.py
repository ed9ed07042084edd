"""Find wire copies: articles that are one agency text, lightly edited, under other publishers.

Method. A text becomes the set of its word 3-shingles (lower-cased, diacritics folded,
punctuation dropped). ``signature`` is the datasketch MinHash of that set, 128 permutations with
a fixed seed and scheme, so stable across runs and processes: a uint32 row an index stores next
to its document table, so a sync hashes new articles only. ``clusters`` bands the stored rows
(64 bands of 2 rows, LSH done in numpy: datasketch's MinHashLSH must be rebuilt from the rows on
every sync, 0.29 s per 1,000 articles, ~30 s at 100k; sorting each band's 64-bit keys takes
0.4 s at 25k and ~5 s at 250k articles on a busy machine),
drops candidates whose rows agree in under 8% of places (chance collisions) and checks the rest
exactly, fetching texts through ``text_of``.

The check is containment: overlap / size of the smaller set. On data/news_nl (226 articles;
copies with up to 29% of their words changed, the last paragraph cut, a dateline added) wire
pairs score >= 0.335 (copy vs original >= 0.50), same-event retellings and unrelated articles
<= 0.231; in Jaccard >= 0.197 against <= 0.124. Both separate this corpus, but Jaccard can
never exceed the share of the original a copy kept, so its threshold would also decide how much
a paper may cut; containment ignores cuts (a lede-only copy scores 1.0). THRESHOLD = 0.3 lies in
the gap, nearer the copies: over 7 generator seeds precision 1.000 and recall >= 0.985; 0.25
does as well but sits 0.02 above the retellings; 0.4 loses up to 6% of the pairs. Under
MIN_SHINGLES shingles (about 27 words) nothing matches: there a shared phrase is chance.

Clusters. Checked pairs form connected components, but closure alone is unsafe: a round-up
holding two agency stories would chain both into one cluster. So a component is split around
representatives: its earliest article (by date, then doc_id) keeps the members that pass the
check against it, the earliest of the rest does the same, and so on.

Measured (tests/test_wire.py, shared 2-core machine): precision 1.000, recall 1.000 on the 129
wire pairs, 0 of 31 same-event pairs collapsed, no two ntrex articles joined. Signatures 0.10 s
for the corpus (0.46 s per 1,000 articles); candidate pairs by banding as above, plus the exact
checks of the candidates.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from qa.language import fold_diacritics

__all__ = ["MIN_SHINGLES", "NUM_PERM", "SIGNATURE_ID", "THRESHOLD", "clusters", "shingles", "signature", "signatures", "similarity"]

NUM_PERM = 128
SEED = 1
SCHEME = "affine32"  # datasketch 2.0's default; fixed so a future default cannot change stored rows
SHINGLE_WORDS = 3
MIN_SHINGLES = 25
THRESHOLD = 0.3
LSH_PARAMS = (64, 2)  # P(candidate) = 1 - (1 - J**2)**64: 0.92 at Jaccard 0.2, 0.998 at 0.3
ESTIMATE_MIN = 0.08  # a pair at Jaccard 0.2 falls below this once in ~1,000 (sd 0.035 at 128 permutations)
SIGNATURE_ID = f"minhash/{SCHEME}/seed={SEED}/perm={NUM_PERM}/words={SHINGLE_WORDS}/min={MIN_SHINGLES}"  # stored rows' maker

EMPTY = np.uint32(0xFFFFFFFF)  # datasketch's value for "no shingle": the row of a text too short to match
_WORD = re.compile(r"[^\W_]+")


def shingles(text: str) -> set[str]:
    """The word 3-shingles of ``text``, lower-cased, diacritics folded, punctuation dropped."""
    words = _WORD.findall(fold_diacritics(text.casefold()))
    return {" ".join(words[i:i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1)}


@functools.cache
def _permutations():
    # datasketch (with SciPy, ~0.4 s) is imported on first use: answering a question never needs it.
    from datasketch import MinHash

    return MinHash(num_perm=NUM_PERM, seed=SEED, scheme=SCHEME).permutations


def signature(text: str) -> np.ndarray:
    """The MinHash row of ``text``: ``(NUM_PERM,)`` uint32, all EMPTY when it has under MIN_SHINGLES shingles."""
    found = shingles(text)
    if len(found) < MIN_SHINGLES:
        return np.full(NUM_PERM, EMPTY, dtype=np.uint32)
    from datasketch import MinHash

    minhash = MinHash(num_perm=NUM_PERM, seed=SEED, scheme=SCHEME, permutations=_permutations())
    minhash.update_batch([shingle.encode("utf-8") for shingle in found])
    return minhash.hashvalues.astype(np.uint32)


def signatures(texts: Iterable[str]) -> np.ndarray:
    """The rows of ``texts`` stacked: ``(n, NUM_PERM)`` uint32, row-aligned with them."""
    rows = [signature(text) for text in texts]
    return np.stack(rows) if rows else np.empty((0, NUM_PERM), dtype=np.uint32)


def similarity(a: str, b: str) -> float:
    """The exact check: shared shingles / shingles of the smaller text (0.0 if either is too short)."""
    return _containment(shingles(a), shingles(b))


def _containment(a: set[str], b: set[str]) -> float:
    smaller = min(len(a), len(b))
    return len(a & b) / smaller if smaller >= MIN_SHINGLES else 0.0


def _candidates(rows: np.ndarray, usable: np.ndarray) -> set[tuple[int, int]]:
    """LSH banding in numpy: rows that agree on all rows of some band. Within a band's group the
    first member is paired with each other one (enough to connect the group: clusters are split
    around their representatives afterwards), so a big group costs pairs linear in its size."""
    bands, width = LSH_PARAMS
    pairs: set[tuple[int, int]] = set()
    if len(usable) < 2:
        return pairs
    for b in range(bands):
        band = np.ascontiguousarray(rows[usable, b * width:(b + 1) * width])
        keys = band.view(np.uint64).ravel() if width == 2 else band.view(np.dtype((np.void, 4 * width))).ravel()
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        # each row's group leader: the first row (in order) with the same key
        starts = np.r_[True, ordered[1:] != ordered[:-1]]
        leader = order[np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))]
        shared = ~starts
        pairs.update(zip(usable[leader[shared]].tolist(), usable[order[shared]].tolist()))
    return pairs


def clusters(doc_ids: Sequence[str], rows: np.ndarray, text_of: Callable[[str], str],
             dates: Sequence[str | None] | None = None) -> dict[str, str]:
    """Group wire copies: each article in a cluster of two or more, mapped to its representative.

    Args:
        doc_ids: The articles, row-aligned with ``rows``.
        rows: Their stored signatures, ``(len(doc_ids), NUM_PERM)``, as ``signature`` made them.
        text_of: Returns an article's text; called only for candidate pairs, once per article.
        dates: ISO dates (``YYYY-MM-DD`` or ``YYYY-MM``, compared as text) or None, row-aligned;
            the earliest article of a cluster represents it (undated ones last, ties by doc_id).

    Returns:
        ``{doc_id: representative doc_id}`` for the members of every cluster, representatives
        included; articles without a copy are left out.

    Raises:
        ValueError: ``rows`` or ``dates`` do not fit ``doc_ids``.
    """
    rows = np.asarray(rows)
    if rows.shape != (len(doc_ids), NUM_PERM):
        raise ValueError(f"rows has shape {rows.shape}; expected ({len(doc_ids)}, {NUM_PERM}), one signature per doc_id")
    if dates is not None and len(dates) != len(doc_ids):
        raise ValueError(f"dates has {len(dates)} entries for {len(doc_ids)} doc_ids; give one per article or None")
    usable = np.flatnonzero((rows != EMPTY).any(axis=1))  # too-short texts never match
    shingles_of = functools.cache(lambda i: shingles(text_of(doc_ids[i])))

    def same(i: int, j: int) -> bool:
        return _containment(shingles_of(i), shingles_of(j)) >= THRESHOLD

    parent = {i: i for i in usable.tolist()}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = i = parent[parent[i]]
        return i

    for i, j in _candidates(rows, usable):
        if np.count_nonzero(rows[i] == rows[j]) >= ESTIMATE_MIN * NUM_PERM and same(i, j):
            parent[root(j)] = root(i)
    components: dict[int, list[int]] = {}
    for i in usable.tolist():
        components.setdefault(root(i), []).append(i)

    found: dict[str, str] = {}
    for members in components.values():  # earliest first; undated last; ties by doc_id
        members.sort(key=lambda i: (dates is None or dates[i] is None, dates and dates[i] or "", doc_ids[i]))
        while len(members) > 1:
            representative, rest = members[0], members[1:]
            copies = [m for m in rest if same(representative, m)]
            for m in [representative, *copies] if copies else []:
                found[doc_ids[m]] = doc_ids[representative]
            members = [m for m in rest if m not in copies]
    return found
