"""Ingestion on Ray Data: the corpus read, chunked and embedded by a cluster (`qa build --ray`).

The pipeline is `from_items(corpus files) -> flat_map(read and chunk one file) ->
map_batches(embed, an actor pool: the project's embedder loaded once per actor)`, and its
result is a `PrecomputedEmbedder`: an `Embedder` with the same identity as the local one whose
`encode_passages` looks each text's vector up by its sha256. The index is then written by the
ordinary build or sync (`QA.build(..., embedder=)`, `shards.sync_shards`), so the generation is
the local path's, byte for byte, except the vectors' float noise (another batch composition).

Reading and chunking on the cluster only serve to find the texts to embed: the writer reads
and chunks the corpus again (one pass, ~1000x cheaper than embedding it; analysis of the terms
and the wire signatures stay on the writer too, SCALING.md). Every node must see the corpus
files at the same paths (a shared file system).

Precision and threads are decided once, by the driver, and set in every actor, so a cluster of
mixed CPUs still writes one precision (the identity every actor checks). A sync passes the
chunks the live index already holds (`known`): they are neither embedded nor sent back.
"""

from __future__ import annotations

import json
import os
import queue
import re
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..bundled_model import DEFAULT_MODEL
from ..chunking import ChunkSettings, chunk_text
from ..corpus import iter_corpus_files
from ..embedding import Embedder, HashEmbedder, ModelIdentity, SentenceEmbedder, cpu_has_bf16, load_embedder
from ..errors import IndexCorruptError, IndexFormatError, IndexMissingError, ModelMismatchError, QAError
from ..index import chunk_sha256, open_rows

# Measured on this 2-core machine (SCALING.md): two actors with one torch thread each embed ~2x
# faster than one process with two threads (a single encode parallelises badly over threads on
# short batches). Actors take half a CPU each so that read tasks always find a share: on 2 CPUs,
# actors that take whole CPUs starve the read task and the pipeline stalls silently.
ACTOR_CPUS = 0.5
READ_CPUS = 0.25
THREADS_PER_ACTOR = 1
BATCH_SIZE = 64           # texts per actor call (the local build's group size, rows.EMBED_GROUP)
READ_TASKS = 1024
BLOCK_BYTES = 64 * 1024   # ~ one batch of chunk texts (SCALING.md)
STALL_TIMEOUT_S = 600.0   # no batch for this long: the pipeline is stuck (fail instead of hanging)


def connect(address: str | None = None, *, num_cpus: int | None = None) -> None:
    """Join the Ray cluster at `address` ("auto": the one this machine belongs to), or start a
    local one (None or "local") with `num_cpus` CPUs (default: this process's cores)."""
    import ray

    if ray.is_initialized():
        return
    quiet = {"log_to_driver": False, "logging_level": "ERROR"}
    if address in (None, "", "local"):
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        ray.init(num_cpus=num_cpus or cores, include_dashboard=False, **quiet)
    else:
        ray.init(address=address, **quiet)


def precision_for(model: str | None) -> str:
    """The precision every actor embeds with: as the local embedder would choose it on this machine."""
    if _is_hash(model):
        return "fp32"
    chosen = os.environ.get("NIEUWS_QA_PRECISION") or "auto"
    return ("bf16" if cpu_has_bf16() else "fp32") if chosen == "auto" else chosen


class PrecomputedEmbedder:
    """An `Embedder` whose passage vectors were computed elsewhere (by sha256 of the text).

    A text that was not computed (none, but the sentences of an index that keeps sentence vectors,
    qa/sentences.py) is embedded by a local embedder of the same identity, loaded when first
    needed; `missed` counts them. Queries are embedded locally.
    """

    def __init__(self, identity: ModelIdentity, vectors: dict[bytes, np.ndarray]):
        self.identity, self._vectors, self.missed, self._local = identity, vectors, 0, None
        self.workers: dict[str, int] = {}   # "node ip:pid" of each actor -> texts it embedded
        self.prompts = identity.prompts

    @property
    def dim(self) -> int:
        return self.identity.dim

    def __len__(self) -> int:
        return len(self._vectors)

    def encode_passages(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        out = np.empty((len(texts), self.dim), np.float32)
        missing = []
        for i, text in enumerate(texts):
            vector = self._vectors.get(chunk_sha256(text))
            if vector is None:
                missing.append(i)
            else:
                out[i] = vector
        if missing:
            self.missed += len(missing)
            out[missing] = self.local().encode_passages([texts[i] for i in missing])
        return out

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self.local().encode_queries(texts)

    def local(self) -> Embedder:
        """The local embedder of this identity (loaded once).

        Raises:
            ModelMismatchError: this machine's embedder would write another identity.
        """
        if self._local is None:
            name = self.identity.name
            local = HashEmbedder(self.identity.dim) if _is_hash(name) else SentenceEmbedder(name, precision=self.identity.precision)
            if local.identity != self.identity:
                raise ModelMismatchError(f"the local embedder is {local.identity.to_dict()}, the cluster's "
                                         f"{self.identity.to_dict()}")
            self._local = local
        return self._local


def known_chunks(index_dirs: Iterable[str | Path], model: str | None, chunking: ChunkSettings | None) -> np.ndarray | None:
    """The sha256 (first 8 bytes, sorted) of the chunks these live indexes hold, when a sync with
    this model and chunking would reuse their vectors (None: it would embed everything)."""
    keys = []
    for index_dir in index_dirs:
        try:
            rows = open_rows(index_dir)
        except (IndexMissingError, IndexCorruptError, IndexFormatError):
            return None
        recorded = rows.manifest
        name = model or recorded["model"]["name"]
        if (recorded["model"]["name"] != name or recorded["model"].get("precision", "fp32") != precision_for(name)
                or (chunking is not None and chunking.to_dict() != recorded["chunking"])):
            return None
        keys.append(np.ascontiguousarray(rows.chunk_sha256[:, :8]).view("<u8").ravel())
    return np.unique(np.concatenate(keys)) if keys else None


def ray_embedder(paths: Iterable[str | Path], *, model: str | None = None, chunking: ChunkSettings | None = None,
                 known: np.ndarray | None = None, actors: int | None = None, threads: int = THREADS_PER_ACTOR,
                 batch_size: int = BATCH_SIZE, stall_timeout: float = STALL_TIMEOUT_S,
                 progress: bool = False) -> PrecomputedEmbedder:
    """Read, chunk and embed the corpus on the connected Ray cluster (`connect` first).

    Args:
        paths: the corpus files and folders (at the same paths on every node).
        model: as for `QA.build`; chunking: as for `QA.build` (default ChunkSettings()).
        known: chunk sha256 prefixes not to embed (`known_chunks`: what a sync reuses).
        actors: embedding actors (default: one per CPU of the cluster; Ray places them, spreading
            them once a node is half busy).
        threads: torch threads per actor; batch_size: texts per actor call.
        stall_timeout: fail when no batch arrives for this long.

    Returns:
        The embedder that hands out the vectors (with `len()` texts embedded).

    Raises:
        CorpusError: a path is missing. ModelError: an actor cannot load the model.
        QAError: the pipeline stalled, or actors disagree on the model's identity.
    """
    import ray
    import ray.data

    chunking = chunking or ChunkSettings()
    name = model or DEFAULT_MODEL
    precision = precision_for(name)
    files = [str(p) for p in iter_corpus_files(paths)]
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = progress
    context.print_on_execution_start = False
    # An actor takes a block at a time, and one file's chunks would be one block: blocks of about
    # one batch let every actor work on a corpus of one large JSONL file. (A repartition step
    # would do it too, but its tasks take a whole CPU, which a 2-CPU cluster with actors on both
    # nodes never has free: the pipeline hangs.)
    context.target_max_block_size = BLOCK_BYTES
    # Blocks go out only once every actor is up, and an actor takes one block at a time (Ray's default
    # is two, and it prefers the actor on the block's node): otherwise the first actor up, or the one
    # beside the read task, may take all of a small corpus's blocks (CI saw "1 actors on 1 node").
    context.wait_for_min_actors_s = max(1, int(stall_timeout))
    actors = actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
    # A read task per file (up to READ_TASKS: a folder of a million small files needs no million tasks).
    ds = ray.data.from_items([{"path": f} for f in files], override_num_blocks=max(1, min(len(files), READ_TASKS)))
    ds = ds.flat_map(_chunk_file, fn_kwargs={"max_words": chunking.max_words, "overlap": chunking.overlap,
                                             "known": known}, num_cpus=READ_CPUS)
    ds = ds.map_batches(_Embed, fn_constructor_kwargs={"model": model, "precision": precision, "threads": threads},
                        batch_size=batch_size, batch_format="numpy", num_cpus=ACTOR_CPUS,
                        compute=ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=1))
    vectors: dict[bytes, np.ndarray] = {}
    identities, workers = set(), {}
    for batch in _batches(ds, stall_timeout):
        identities.update(batch["identity"].tolist())
        for worker in batch["worker"].tolist():
            workers[worker] = workers.get(worker, 0) + 1
        for sha, vector in zip(batch["sha"].tolist(), batch["vector"]):
            vectors[bytes.fromhex(sha)] = vector
    if len(identities) > 1:
        raise QAError(f"the cluster's actors embedded with different models: {sorted(identities)}")
    if identities:
        identity = json.loads(identities.pop())
    else:  # nothing to embed: the identity the actors would have had
        identity = ray.get(ray.remote(_identity_of).options(num_cpus=READ_CPUS).remote(model, precision),
                           timeout=stall_timeout)
    embedder = PrecomputedEmbedder(ModelIdentity(**identity), vectors)  # (the inverse of to_dict)
    embedder.workers = workers
    return embedder


def _batches(ds, stall_timeout: float):
    """The dataset's output batches, failing (QAError) when none arrives for `stall_timeout` s."""
    out: queue.Queue = queue.Queue(maxsize=8)
    done = object()

    def pump() -> None:
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                out.put(batch)
            out.put(done)
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            out.put(exc)

    threading.Thread(target=pump, name="ray-data-ingest", daemon=True).start()
    while True:
        try:
            item = out.get(timeout=stall_timeout)
        except queue.Empty:
            raise QAError(f"the Ray pipeline produced nothing for {stall_timeout:g} s (stalled: are the CPUs "
                          "taken by other work?); nothing was written") from None
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def _chunk_file(row: dict, *, max_words: int, overlap: int, known: np.ndarray | None) -> list[dict]:
    """The chunk texts of one corpus file that are not `known` (Ray Data flat_map)."""
    import warnings

    from ..corpus import scan_corpus
    from ..errors import CorpusError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the writer reads the corpus again and reports what is bad
        try:
            articles = scan_corpus([row["path"]], skip_bad=True).articles
        except CorpusError:
            return []
    out, seen = [], set()
    for article in articles:
        for chunk in chunk_text(article.doc_id, article.text, max_words=max_words, overlap=overlap):
            sha = chunk_sha256(chunk.text)
            if sha in seen:
                continue
            seen.add(sha)
            if known is not None and known.size:
                prefix = np.frombuffer(sha[:8], "<u8")[0]
                i = np.searchsorted(known, prefix)
                if i < known.size and known[i] == prefix:
                    continue  # (a prefix collision only costs a local embed of that chunk later)
            out.append({"sha": sha.hex(), "text": chunk.text})
    return out


class _Embed:
    """The actor of the embedding pool: the project's embedder, loaded once."""

    def __init__(self, model: str | None, precision: str, threads: int):
        os.environ["NIEUWS_QA_PRECISION"] = precision
        os.environ["NIEUWS_QA_THREADS"] = str(threads)
        os.environ["NIEUWS_QA_QUERY_BACKEND"] = "torch"  # an actor embeds passages only: no question encoder
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.embedder = load_embedder(model)
        self.identity = json.dumps(self.embedder.identity.to_dict(), sort_keys=True)
        import ray

        self.worker = f"{ray.util.get_node_ip_address()}:{os.getpid()}"

    def __call__(self, batch: dict) -> dict:
        texts = batch["text"].tolist()
        vectors = self.embedder.encode_passages(texts)
        return {"sha": batch["sha"], "vector": vectors, "identity": np.array([self.identity] * len(texts), object),
                "worker": np.array([self.worker] * len(texts), object)}


def _identity_of(model: str | None, precision: str) -> dict:
    os.environ["NIEUWS_QA_PRECISION"] = precision
    os.environ["NIEUWS_QA_QUERY_BACKEND"] = "torch"
    return load_embedder(model).identity.to_dict()


def _is_hash(model: str | None) -> bool:
    return bool(model and re.fullmatch(r"hash-\d+", model))
