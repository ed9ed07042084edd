"""One shard of a sharded index, served: each leg's top rows for a prepared question.

A `ShardSearcher` opens a shard's live generation as `QA.load` does, weighs its BM25 index again
with the collection's statistics (shards.py), and answers `QA.legs` for a question the router
prepared, with what the router needs to rank the merged rows as one index would: each row's
article, first day and recency factor, and which of the question's terms the shard knows. Rows
go out as the rows of one index over the corpus (the layout records them), so the router orders
equal scores as one index does. Filters apply inside the shard (its own news tables), exactly as
in one index.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import numpy as np

from ..api import QA
from ..chunking import Chunk
from ..conversation import search_terms
from ..corpus import Document
from ..embedding import ModelIdentity
from ..errors import IndexFormatError
from ..fusion import SearchSettings
from ..index import open_live
from ..query import Query
from .shards import Layout, collection_bm25

# The records of each leg's best PREFETCH * k rows go with a shard's answer (ShardSearcher.legs):
# with 2, 4% of kamervragen_nl's questions over 3 shards needed a second round for a cited row.
PREFETCH = 2


@dataclass(frozen=True)
class ShardLegs:
    """A shard's answer to `ShardSearcher.legs` (sent to the router)."""

    shard: str
    generation: str
    legs: dict                 # leg -> [(row, score)], best first; rows of one index over the corpus
    docs: dict                 # row -> (doc_id, first day ordinal, recency factor or 1.0)
    known: tuple[bool, ...]    # per search term of the question: in this shard's vocabulary
    chunks: dict = field(default_factory=dict)      # row -> Chunk, of the rows most likely cited
    documents: dict = field(default_factory=dict)   # doc_id -> Document, of those rows


class _NoEmbedder:
    """A shard never embeds: the router prepares every question."""

    def __init__(self, identity: dict):
        self.identity = ModelIdentity(**identity)  # (the inverse of to_dict)

    @property
    def dim(self) -> int:
        return self.identity.dim

    def encode_passages(self, texts, *, progress=False):
        raise RuntimeError("a shard does not embed")

    encode_queries = encode_passages


class ShardSearcher:
    """Shard `number` of the layout at `root`, opened (checksums verified) for searching.

    Raises:
        IndexMissingError, IndexCorruptError: the shard or the layout cannot be read.
        IndexFormatError: the layout's statistics were computed for another generation.
    """

    def __init__(self, root: str | Path, number: int, *, verify: bool = True):
        layout = Layout.load(root)  # (not kept: its global wire map is the router's business)
        self.number = number
        self.name = layout.shards[number].name
        index = open_live(layout.folder(number), verify=verify)
        bm25 = collection_bm25(layout, number, index.folder, index.bm25, len(index.chunks))
        self.generation = index.folder.name
        self.rows = layout.rows(number, self.generation, len(index.chunks))  # increasing
        self.qa = QA(replace(index, bm25=bm25), _NoEmbedder(index.manifest["model"]))
        if self.qa.news is None:
            raise IndexFormatError(f"{index.folder} has no news tables; sync the shards again")
        # Each document's id in memory (its table is read on demand otherwise): every answer names
        # the article of up to 2 x depth rows.
        self._doc_ids = [d.doc_id for d in index.docs.records.all()]

    def describe(self) -> dict:
        """What the router checks and uses: name, generation, sizes, newest day, model, analyzer."""
        news = self.qa.news
        return {"shard": self.name, "number": self.number, "generation": self.generation,
                "chunks": len(self.qa.chunks), "documents": len(self.qa.docs),
                "newest": news.newest.isoformat() if news.newest else None, "publishers": list(news.publishers),
                "model": self.qa.manifest["model"], "analyzer": self.qa.manifest["analyzer"]}

    def legs(self, query: Query, settings: SearchSettings, today: date) -> ShardLegs:
        """Each leg's top rows of this shard (`QA.legs`), with their articles' data; `today` is
        the whole index's reference date (for recency). The records of each leg's best
        PREFETCH * k rows come along: the rows an answer cites are nearly always among them, so
        the router rarely has to ask again."""
        legs = self.qa.legs(query, settings)
        rows = sorted({r for found in legs.values() for r, _ in found})
        news = self.qa.news
        docs = news.row_doc[np.asarray(rows, np.int64)].tolist() if rows else []
        factors = news.recency(rows, today).tolist() if rows and query.recency else [1.0] * len(rows)
        out = self.rows
        info = {int(out[r]): (self._doc_ids[d], int(news.days[d, 0]), f) for r, d, f in zip(rows, docs, factors)}
        terms = search_terms(query) or ()
        likely = sorted({int(out[r]) for found in legs.values() for r, _ in found[:PREFETCH * settings.k]})
        legs = {leg: [(int(out[r]), s) for r, s in found] for leg, found in legs.items()}
        chunks, documents = self.records(likely)
        return ShardLegs(self.name, self.generation, legs, info, self.qa.bm25.knows(terms),
                         chunks, documents)

    def memory(self) -> dict:
        return process_memory()

    def records(self, rows: list[int]) -> tuple[dict[int, Chunk], dict[str, Document]]:
        """The chunk records of some rows (as `legs` numbers them), and their documents' records."""
        local = np.searchsorted(self.rows, np.asarray(rows, np.int64)).tolist()
        if any(i >= len(self.rows) or self.rows[i] != r for i, r in zip(local, rows)):
            raise KeyError(f"{self.name} has no rows {rows}")
        chunks = {int(r): self.qa.chunks[i] for r, i in zip(rows, local)}
        # Documents by their row in the table (one record read each), not by id (a binary search).
        wanted = {int(d) for d in self.qa.news.row_doc[np.asarray(local, np.int64)]} if local else set()
        records = self.qa.docs.records
        return chunks, {self._doc_ids[d]: records[d] for d in wanted}


def process_memory() -> dict:
    """This process's memory in MB (/proc/self/status: resident, heap, mapped files)."""
    out = {}
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "RssAnon", "RssFile"):
                    out[key] = round(int(rest.split()[0]) / 1024, 1)
    except OSError:
        pass
    return out
