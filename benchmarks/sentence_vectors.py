"""Stored sentence vectors (qa/sentences.py): what they cost a build, and what they save an answer.

    python benchmarks/sentence_vectors.py --data data --workdir /tmp/sv [--limit 1000] [--sets xquad_nl ntrex_nl]

Builds the sets' passages (default xquad_nl + ntrex_nl) with the real model, then adds sentence vectors by a sync (which reuses
every chunk vector, so its time is the sentences' cost). Then asks a fixed random sample of both
sets' questions twice on the same index, the sentence cache emptied before each question: with the
stored vectors, and embedding the sentences as an index without them does. Prints one JSON object:
build and sync seconds, ask p50/p95 per way, answer-sentence accuracy (as `qa eval` counts it) and
answer_found per set and language, and the share of questions whose five highlights are identical.
Results: BENCHMARKS.md, "Stored sentence vectors".
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from qa.api import QA
from qa.embedding import load_embedder
from qa.eval.datasets import load_dataset

SETS = ("xquad_nl", "ntrex_nl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/sentence-vectors"))
    parser.add_argument("--limit", type=int, default=1000, help="questions sampled, split over the sets (default 1000)")
    parser.add_argument("--sets", nargs="+", default=list(SETS), help=f"data sets (default: {' '.join(SETS)})")
    args = parser.parse_args()
    index = args.workdir / "index"
    shutil.rmtree(index, ignore_errors=True)
    embedder = load_embedder()
    files = [args.data / s / "passages.jsonl" for s in args.sets]
    out: dict = {}
    start = time.perf_counter()
    QA.build(files, index, embedder=embedder)
    out["build_s"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    report = QA.sync(files, index, embedder=embedder, sentence_vectors=True)
    out["sentence_sync_s"], out["sentences"] = round(time.perf_counter() - start, 1), report.sentences
    qa = QA.load(index, embedder=embedder)
    out["chunks"] = len(qa.chunks)

    questions = [(s, q) for s in args.sets for q in load_dataset(args.data / s, limit=args.limit // len(args.sets)).questions]
    sentence_vectors, stored = qa._sentence_vectors, qa._sentence_vectors.stored
    highlights = {}
    for way in ("stored", "embedded"):
        sentence_vectors.stored = stored if way == "stored" else None
        latencies, rows, highlights[way] = [], [], []
        for name, q in questions:
            sentence_vectors._cache.clear()
            start = time.perf_counter()
            answer = qa.ask(q.text, k=5)
            latencies.append((time.perf_counter() - start) * 1000)
            # As `qa eval` counts it: the answer string inside the highlight of the gold passage.
            cited = next((c for c in answer.citations if c.doc_id in q.gold), None)
            hit = bool(q.answer and cited and q.answer.casefold() in cited.highlight.text.casefold())
            rows.append((f"{name} {q.lang}", hit if q.answer else None, answer.answer_found))
            highlights[way].append([c.highlight.text for c in answer.citations])
        groups = {}
        for group, hit, found in rows:
            groups.setdefault(group, []).append((hit, found))
        out[way] = {"ask_p50_ms": round(float(np.percentile(latencies, 50)), 1),
                    "ask_p95_ms": round(float(np.percentile(latencies, 95)), 1),
                    **{g: {"n": len(v), "answer_sentence_accuracy": _share([h for h, _ in v if h is not None]),
                           "answer_found": _share([f for _, f in v])} for g, v in sorted(groups.items())}}
    out["identical_highlights"] = round(float(np.mean([a == b for a, b in zip(highlights["stored"], highlights["embedded"])])), 4)
    print(json.dumps(out))


def _share(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 3) if flags else None


if __name__ == "__main__":
    main()
