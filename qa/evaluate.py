"""Evaluation on question sets: retrieval metrics per mode and language, answers, fusion sweep, no-answer calibration.

A dataset is a folder with `passages.jsonl` (id, text, optional title and lang: the corpus) and
`questions.jsonl` (id, question, lang, answer_passage_ids, optional answer). Its passages are
indexed with the normal pipeline (`QA.build`), optionally together with other sets' passages as
distractors, and every question is searched in each mode. Metrics are passage-level: chunk hits
map to their passage (the JSONL id) at the rank of its best chunk, so a hit on any chunk of a gold
passage counts for that passage.

    from qa.evaluate import evaluate
    report = evaluate("data/xquad_nl", distractors=["data/ntrex_nl"], limit=200)
    report["metrics"]["hybrid"]["en"]["R@5"]
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import tempfile
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import QAError

PASSAGES_FILE, QUESTIONS_FILE = "passages.jsonl", "questions.jsonl"
MODES = ("bm25", "dense", "hybrid")
METRIC_KS = (1, 5, 10)
ASK_K = 5                 # citations per answer, as the chat shows them
CHUNKS_PER_PASSAGE = 3    # chunk hits fetched per passage rank wanted (a passage may be 2-3 chunks)
SAMPLE_SEED = 0           # `limit` draws the same questions every run
ACCEPT_MARGIN = 0.01      # hybrid may trail the better single leg by this much
CROSS_LINGUAL_MARGIN = 0.05

# The sweep grid. Weighted RRF ranks by w_bm25 / (k + r_bm25) + w_dense / (k + r_dense), which is
# unchanged when both weights are scaled, so only the ratio matters (0.5:1 is 1:2).
SWEEP_RRF_K = (10, 30, 60, 100)
SWEEP_WEIGHTS = ((0.25, 1.0), (0.5, 1.0), (0.75, 1.0), (1.0, 1.0), (1.0, 0.75), (1.0, 0.5))
SWEEP_DEPTHS = (20, 50, 100)
SWEEP_METRICS = ("MRR@10", "R@5")

# Hand-written checks for the no-answer rule against the seed corpus (a Dutch article on the war
# in Ukraine): the corpus answers the first two and not the third.
SEED_CHECKS = (
    ("Hoeveel vierkante kilometer is in minder dan een week bevrijd?", True),
    ("How many square kilometres were liberated in less than a week?", True),
    ("Who won the 2018 World Cup?", False),
)
QUANTILES = (0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0)


class DatasetError(QAError):
    """An evaluation dataset folder is missing a file or has a bad record."""


# ---------------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class Question:
    """One evaluation question with its gold passages.

    `answer` is the gold answer string in the passages' language (`answer_nl` when a set has it,
    else `answer`), kept only when it occurs in a gold passage, so it can be looked for in the
    highlighted sentence.
    """

    id: str
    text: str
    lang: str
    gold: tuple[str, ...]
    answer: str | None = None


@dataclass(frozen=True)
class Dataset:
    """A question set and the passages file that is its corpus."""

    name: str
    folder: Path
    passages: Path
    questions: tuple[Question, ...]
    total_questions: int


def load_dataset(folder: str | Path, *, limit: int | None = None) -> Dataset:
    """Read a dataset folder.

    Args:
        folder: a folder with passages.jsonl and questions.jsonl.
        limit: keep this many questions, drawn at random with a fixed seed (in file order).

    Raises:
        DatasetError: a file is missing, a line is not a question record, or a gold passage id
            is not in passages.jsonl.
    """
    folder = Path(folder)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    passages, questions_file = folder / PASSAGES_FILE, folder / QUESTIONS_FILE
    for path in (passages, questions_file):
        if not path.is_file():
            raise DatasetError(f"{path} is missing; a dataset folder holds {PASSAGES_FILE} and {QUESTIONS_FILE}")
    texts = {str(r["id"]): r.get("text", "") for r in _read_records(passages, ("id", "text"))}
    records = _read_records(questions_file, ("id", "question", "answer_passage_ids"))
    total = len(records)
    if limit is not None and limit < total:
        keep = sorted(random.Random(SAMPLE_SEED).sample(range(total), limit))
        records = [records[i] for i in keep]
    questions = []
    for r in records:
        gold = tuple(str(g) for g in r["answer_passage_ids"])
        missing = [g for g in gold if g not in texts]
        if not gold or missing:
            raise DatasetError(f"{questions_file}: question {r['id']!r} has gold passages {missing or '[]'} "
                               f"that are not in {PASSAGES_FILE}; fix the dataset")
        answer = r.get("answer_nl") or r.get("answer")
        if not (isinstance(answer, str) and answer.strip()
                and any(answer.strip().casefold() in texts[g].casefold() for g in gold)):
            answer = None
        lang = r.get("lang")
        if not isinstance(lang, str) or not lang:
            from .language import detect_language
            lang = detect_language(r["question"])
        # Stripped as QA.search strips it, so the vectors embedded up front are the ones searched.
        questions.append(Question(str(r["id"]), r["question"].strip(), lang, gold, answer and answer.strip()))
    return Dataset(folder.name or str(folder), folder, passages, tuple(questions), total)


def load_passages(folder: str | Path) -> Dataset:
    """A folder used only for its passages (a distractor set): questions.jsonl is not needed."""
    folder = Path(folder)
    passages = folder / PASSAGES_FILE
    if not passages.is_file():
        raise DatasetError(f"{passages} is missing; a distractor folder holds {PASSAGES_FILE}")
    return Dataset(folder.name or str(folder), folder, passages, (), 0)


def _read_records(path: Path, required: tuple[str, ...]) -> list[dict]:
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{number}: not valid JSON ({exc.msg}); fix the dataset") from None
            if not isinstance(record, dict) or any(key not in record for key in required):
                raise DatasetError(f"{path}:{number}: expected a JSON object with {', '.join(required)}")
            records.append(record)
    if not records:
        raise DatasetError(f"{path} has no records")
    return records


# ---------------------------------------------------------------------------------- fusion settings


@dataclass(frozen=True)
class Fusion:
    """The hybrid search settings under test: RRF constant, candidates per leg, leg weights."""

    rrf_k: int
    depth: int
    weights: dict = field(default_factory=dict)

    @classmethod
    def defaults(cls) -> "Fusion":
        """The settings new indexes get (read at call time, so a changed constant is seen)."""
        from . import api, fusion

        return cls(fusion.RRF_K, api.DEFAULT_DEPTH, dict(api.DEFAULT_WEIGHTS))

    def to_dict(self) -> dict:
        return {"rrf_k": self.rrf_k, "depth": self.depth, "weights": dict(self.weights)}

    def label(self) -> str:
        return f"k={self.rrf_k} bm25:dense={self.weights.get('bm25', 1.0):g}:{self.weights.get('dense', 1.0):g} depth={self.depth}"


# ---------------------------------------------------------------------------------- embedding and indexes


class CachingEmbedder:
    """An embedder that remembers every vector it made, by kind and text.

    Shared by all indexes of a run, so a passage is embedded once however many corpora contain
    it, and a question once however many settings search it.
    """

    def __init__(self, inner):
        self.inner = inner
        self.identity = inner.identity
        self._cache: dict[tuple[str, str], np.ndarray] = {}
        self.embedded = {"passage": 0, "query": 0}

    @property
    def dim(self) -> int:
        return self.inner.dim

    def encode_passages(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        return self._encode("passage", texts, progress)

    def encode_queries(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        return self._encode("query", texts, progress)

    def _encode(self, kind: str, texts: list[str], progress: bool) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if (kind, t) not in self._cache]
        if missing:
            if kind == "passage":
                vectors = self.inner.encode_passages(missing, progress=progress)
            else:
                batches = [missing[i:i + 256] for i in range(0, len(missing), 256)]
                vectors = np.concatenate([self.inner.encode_queries(b) for b in _bar(batches, "embedding questions", progress)])
            self._cache.update(((kind, t), v) for t, v in zip(missing, vectors))
            self.embedded[kind] += len(missing)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self._cache[(kind, t)] for t in texts])


class Workspace:
    """What the evaluations of one run share: the (caching) embedder and the indexes.

    Args:
        embedder: an already loaded embedder (e.g. the test suite's session model).
        model: otherwise, the model to load (None: the bundled default; "hash-64": the fake).
        index_dir: keep indexes here, one subfolder per corpus, reused while the corpus files and
            model are unchanged; None builds them in a temporary folder removed by `close()`.
        progress: show progress bars on stderr.
    """

    def __init__(self, *, embedder=None, model: str | None = None, index_dir: str | Path | None = None,
                 progress: bool = False):
        if embedder is None:
            from .embedding import load_embedder
            embedder = load_embedder(model)
        self.embedder = embedder if isinstance(embedder, CachingEmbedder) else CachingEmbedder(embedder)
        self._tmp = None if index_dir else tempfile.TemporaryDirectory(prefix="qa-eval-")
        self.index_root = Path(index_dir) if index_dir else Path(self._tmp.name)
        self.progress = progress
        self._open: dict[str, tuple] = {}

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._open.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def index(self, passage_files: Sequence[Path]):
        """The QA index of these passage files, built (or loaded from the cache) once per run.

        Returns:
            (qa, info) with info = {"folder", "seconds", "cached", "embedded"}.
        """
        from .api import QA, stale_reason
        from .chunking import ChunkSettings
        from .lexical import Analyzer

        files = sorted({Path(p).resolve() for p in passage_files})
        name = "+".join(p.parent.name for p in files)
        # Everything that makes the index: model (with its precision), chunking, analyzer, files.
        recipe = [self.embedder.identity.to_dict(), ChunkSettings().to_dict(), Analyzer.VERSION, Analyzer().to_dict(),
                  [str(p) for p in files]]
        key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:10]
        folder = self.index_root / f"{name}-{key}"
        if key in self._open:
            qa, info = self._open[key]
            return qa, {**info, "seconds": 0.0, "cached": True, "embedded": 0}
        start, before = time.perf_counter(), self.embedder.embedded["passage"]
        qa, cached = None, False
        if stale_reason(folder, files) is None:
            try:
                qa, cached = QA.load(folder, embedder=self.embedder), True
            except QAError:
                qa = None
        if qa is None:
            qa = QA.build(files, folder, embedder=self.embedder, progress=self.progress)
        info = {"folder": str(folder), "seconds": round(time.perf_counter() - start, 2), "cached": cached,
                "embedded": self.embedder.embedded["passage"] - before}
        self._open[key] = (qa, info)
        return qa, info



@contextmanager
def _workspace(workspace: Workspace | None, **settings):
    """The caller's workspace, or a new one with these settings, closed afterwards."""
    if workspace is not None:
        yield workspace
    else:
        with Workspace(**settings) as ws:
            yield ws

def _bar(iterable, desc: str, progress: bool, total: int | None = None):
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, disable=not progress, leave=False, file=sys.stderr,
                mininterval=2.0, dynamic_ncols=True)


def _use_fusion(qa, fusion: Fusion) -> None:
    # ask() searches with the index's own settings; point them at the settings under test.
    qa.rrf_k, qa.depth, qa.weights = fusion.rrf_k, fusion.depth, dict(fusion.weights)


def _corpus_files(dataset: Dataset, distractors: Iterable[Dataset]) -> list[Path]:
    return [dataset.passages] + [d.passages for d in distractors if d.passages.resolve() != dataset.passages.resolve()]


# ---------------------------------------------------------------------------------- metrics


def rank_passages(qa, question: str, *, mode: str, fusion: Fusion, n: int = max(METRIC_KS)) -> list[str]:
    """The first n distinct passages (chunk doc_ids) of a search, each at its best chunk's rank."""
    k = CHUNKS_PER_PASSAGE * n
    if mode == "hybrid":
        k = min(k, fusion.depth)  # search() widens depth to k, which would change the setting under test
    hits = qa.search(question, k=k, mode=mode, depth=fusion.depth, rrf_k=fusion.rrf_k, weights=fusion.weights)
    passage_ids = _passage_ids(qa)
    ranked: list[str] = []
    for hit in hits:
        doc_id = passage_ids[hit.row]
        if doc_id not in ranked:
            ranked.append(doc_id)
            if len(ranked) == n:
                break
    return ranked


_PASSAGE_IDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _passage_ids(qa) -> list[str]:
    """Row -> doc_id of a loaded index, read once: chunk records are parsed on demand, and
    evaluation looks up every hit of every question under every setting."""
    if qa not in _PASSAGE_IDS:
        _PASSAGE_IDS[qa] = [c["doc_id"] for c in qa.chunks]
    return _PASSAGE_IDS[qa]


def metric_names(ks: Sequence[int] = METRIC_KS) -> list[str]:
    """Report names of the metrics for these cutoffs: R@k for each k, MRR and nDCG at the largest."""
    top = max(ks)
    return [f"R@{k}" for k in ks] + [f"MRR@{top}", f"nDCG@{top}"]


def per_question_metrics(rankings: dict[str, list[str]], gold: dict[str, Sequence[str]],
                         ks: Sequence[int] = METRIC_KS) -> dict[str, dict[str, float]]:
    """Recall@k, MRR and nDCG per question with ir_measures (trec_eval semantics).

    Args:
        rankings: question id -> passage ids, best first.
        gold: question id -> relevant passage ids (binary relevance).

    Returns:
        question id -> metric name -> value; a question with no results scores 0.
    """
    import ir_measures
    from ir_measures import RR, R, nDCG

    top = max(ks)
    measures = {f"R@{k}": R @ k for k in ks} | {f"MRR@{top}": RR @ top, f"nDCG@{top}": nDCG @ top}
    names = {str(m): name for name, m in measures.items()}
    qrels = [ir_measures.Qrel(q, d, 1) for q, docs in gold.items() for d in docs]
    # Scores only order the run: the first passage gets the highest, no ties.
    run = [ir_measures.ScoredDoc(q, d, float(top - i)) for q, docs in rankings.items() for i, d in enumerate(docs[:top])]
    # trec_eval leaves out questions without results; they count as 0 here.
    values = {q: dict.fromkeys(measures, 0.0) for q in gold}
    if run:
        for m in ir_measures.iter_calc(list(measures.values()), qrels, run):
            values[m.query_id][names[str(m.measure)]] = float(m.value)
    return values


def _group_means(values: dict[str, dict[str, float]], questions: Sequence[Question], names: list[str]) -> dict:
    groups: dict[str, list[str]] = {"all": [q.id for q in questions]}
    for q in questions:
        groups.setdefault(q.lang, []).append(q.id)
    return {g: {"n": len(ids), **{m: round(float(np.mean([values[i][m] for i in ids])), 4) for m in names}}
            for g, ids in groups.items()}


def _search_metrics(qa, questions: Sequence[Question], mode: str, fusion: Fusion, ks: Sequence[int],
                    progress: bool, desc: str) -> dict:
    rankings = {q.id: rank_passages(qa, q.text, mode=mode, fusion=fusion, n=max(ks))
                for q in _bar(questions, desc, progress)}
    values = per_question_metrics(rankings, {q.id: q.gold for q in questions}, ks)
    return _group_means(values, questions, metric_names(ks))


# ---------------------------------------------------------------------------------- answers


def _answer_stats(qa, questions: Sequence[Question], progress: bool, desc: str) -> tuple[dict, list[float]]:
    """answer_found rate and answer-sentence accuracy per language, via qa.ask (hybrid)."""
    rows = []
    for q in _bar(questions, desc, progress):
        answer = qa.ask(q.text, k=ASK_K)
        cited = next((c for c in answer.citations if c.doc_id in q.gold), None)
        hit = bool(q.answer and cited and q.answer.casefold() in cited.highlight.text.casefold())
        rows.append((q, answer.answer_found, cited is not None, hit, top_cosine(answer)))
    groups: dict[str, list] = {"all": rows}
    for row in rows:
        groups.setdefault(row[0].lang, []).append(row)
    stats = {}
    for g, rs in groups.items():
        with_answer = [r for r in rs if r[0].answer]
        cited = [r for r in with_answer if r[2]]
        stats[g] = {
            "n": len(rs),
            "answer_found": round(sum(r[1] for r in rs) / len(rs), 4),
            "gold_cited": round(sum(r[2] for r in rs) / len(rs), 4),
            "answer_questions": len(with_answer),
            "answer_sentence_accuracy": _ratio(sum(r[3] for r in with_answer), len(with_answer)),
            "answer_sentence_accuracy_when_cited": _ratio(sum(r[3] for r in cited), len(cited)),
        }
    return stats, [r[4] for r in rows]


def top_cosine(answer) -> float:
    """The score the no-answer rule compares: the best highlighted sentence's cosine over all citations."""
    return max((c.highlight.score for c in answer.citations), default=0.0)


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


# ---------------------------------------------------------------------------------- evaluate


def evaluate(dataset_dir: str | Path, *, modes: Sequence[str] = MODES, distractors: Sequence[str | Path] = (),
             ks: Sequence[int] = METRIC_KS, limit: int | None = None, answers: bool = True,
             fusion: Fusion | None = None, embedder=None, model: str | None = None,
             index_dir: str | Path | None = None, progress: bool = False,
             workspace: Workspace | None = None) -> dict:
    """Index a dataset's passages (plus distractors), run every question, and report the metrics.

    Args:
        dataset_dir: the dataset folder.
        modes: search modes to evaluate ("bm25", "dense", "hybrid").
        distractors: other dataset folders whose passages join the index (gold stays this set's).
        ks: recall cutoffs; MRR and nDCG are taken at the largest.
        limit: evaluate a fixed random sample of this many questions.
        answers: also run qa.ask (hybrid) for answer_found and answer-sentence accuracy.
        fusion: hybrid settings under test (default: the code's current defaults).
        embedder, model, index_dir, progress: see `Workspace` (ignored when `workspace` is given).
        workspace: share the embedder and indexes with other evaluations.

    Returns:
        A JSON-ready report: metrics[mode][language or "all"] -> {"n", "R@1", ..., "MRR@10",
        "nDCG@10"}, answers[language] (or None), checks (hybrid against the legs), seconds.

    Raises:
        DatasetError: a dataset folder is incomplete.
        ValueError: an unknown mode or a bad cutoff.
    """
    modes = _check_modes(modes)
    ks = _check_ks(ks)
    fusion = fusion or Fusion.defaults()
    with _workspace(workspace, embedder=embedder, model=model, index_dir=index_dir, progress=progress) as ws:
        started = time.perf_counter()
        dataset = load_dataset(dataset_dir, limit=limit)
        others = [load_passages(d) for d in distractors]
        others = [d for d in others if d.passages.resolve() != dataset.passages.resolve()]
        qa, index_info = ws.index(_corpus_files(dataset, others))
        _use_fusion(qa, fusion)
        seconds = {"index": index_info["seconds"]}
        t = time.perf_counter()
        ws.embedder.encode_queries([q.text for q in dataset.questions], progress=ws.progress)
        seconds["questions"] = round(time.perf_counter() - t, 2)
        metrics = {}
        for mode in modes:
            t = time.perf_counter()
            metrics[mode] = _search_metrics(qa, dataset.questions, mode, fusion, ks, ws.progress, f"{dataset.name} {mode}")
            seconds[mode] = round(time.perf_counter() - t, 2)
        answer_stats = None
        if answers and "hybrid" in modes:
            t = time.perf_counter()
            answer_stats, _ = _answer_stats(qa, dataset.questions, ws.progress, f"{dataset.name} ask")
            seconds["answers"] = round(time.perf_counter() - t, 2)
        seconds["total"] = round(time.perf_counter() - started, 2)
        return {
            "dataset": dataset.name,
            "path": str(dataset.folder),
            "distractors": [d.name for d in others],
            "questions": len(dataset.questions),
            "questions_in_set": dataset.total_questions,
            "corpus": {"passages": len(qa.docs), "chunks": len(qa.chunks), "index": index_info["folder"],
                       "index_cached": index_info["cached"], "passages_embedded": index_info["embedded"]},
            "model": qa.manifest["model"]["name"],
            "fusion": fusion.to_dict(),
            "metrics": metrics,
            "answers": answer_stats,
            "checks": hybrid_checks(metrics, ks),
            "seconds": seconds,
        }


def hybrid_checks(metrics: dict, ks: Sequence[int] = METRIC_KS) -> dict:
    """Per language: hybrid minus the better single leg in R@5 and MRR@10 (ok: > -ACCEPT_MARGIN),
    and for English questions the gap to Dutch ones in hybrid R@5."""
    checks: dict = {}
    names = [n for n in (f"R@{5 if 5 in ks else max(ks)}", f"MRR@{max(ks)}")]
    if all(m in metrics for m in MODES):
        for lang in metrics["hybrid"]:
            margins = {n: round(metrics["hybrid"][lang][n] - max(metrics["bm25"][lang][n], metrics["dense"][lang][n]), 4)
                       for n in names}
            checks[lang] = {"margins": margins, "ok": all(v >= -ACCEPT_MARGIN for v in margins.values())}
    hybrid = metrics.get("hybrid", {})
    if "nl" in hybrid and "en" in hybrid:
        gap = round(hybrid["nl"][names[0]] - hybrid["en"][names[0]], 4)
        checks["en_vs_nl"] = {f"{names[0]}_gap": gap, "ok": gap <= CROSS_LINGUAL_MARGIN}
    return checks


def _check_modes(modes: Sequence[str]) -> tuple[str, ...]:
    modes = tuple(dict.fromkeys(modes))
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ValueError(f"modes must be some of {', '.join(MODES)}, got {list(modes)!r}")
    return modes


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(sorted(set(ks)))
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {list(ks)!r}")
    return ks


# ---------------------------------------------------------------------------------- sweep


def sweep(dataset_dirs: Sequence[str | Path], *, distractors: Sequence[str | Path] = (),
          rrf_ks: Sequence[int] = SWEEP_RRF_K, weights: Sequence[tuple[float, float]] = SWEEP_WEIGHTS,
          depths: Sequence[int] = SWEEP_DEPTHS, limit: int | None = None, embedder=None, model: str | None = None,
          index_dir: str | Path | None = None, progress: bool = False, workspace: Workspace | None = None) -> dict:
    """Try every fusion setting on every set and language; pick the best.

    Each corpus is embedded once and its index reused for all settings (search() takes the
    settings per call). The best setting has the highest mean of mean-MRR@10 and mean-R@5 over the
    (set, language) groups, among the settings where hybrid is within ACCEPT_MARGIN of the better
    single leg in both metrics in every group (over all settings if none is).

    Returns:
        {"groups", "legs" (bm25/dense metrics per group), "rows" (one per setting, best first),
        "best", "default", "seconds"}.
    """
    with _workspace(workspace, embedder=embedder, model=model, index_dir=index_dir, progress=progress) as ws:
        started = time.perf_counter()
        sets = [load_dataset(d, limit=limit) for d in dataset_dirs]
        others = [load_passages(d) for d in distractors]
        corpora = []
        for ds in sets:
            qa, _ = ws.index(_corpus_files(ds, others))
            corpora.append((ds, qa))
        ws.embedder.encode_queries([q.text for ds in sets for q in ds.questions], progress=ws.progress)
        default = Fusion.defaults()
        legs: dict[str, dict] = {}
        for mode in ("bm25", "dense"):
            for ds, qa in corpora:
                per = _search_metrics(qa, ds.questions, mode, default, METRIC_KS, ws.progress, f"{ds.name} {mode}")
                for lang, m in per.items():
                    if lang != "all":
                        legs.setdefault(mode, {})[f"{ds.name}/{lang}"] = {n: m[n] for n in SWEEP_METRICS}
        groups = list(legs["dense"])
        settings = [Fusion(k, depth, {"bm25": wb, "dense": wd}) for depth in depths for k in rrf_ks for wb, wd in weights]
        if default not in settings:
            settings.append(default)
        rows = []
        for fusion in _bar(settings, "sweep", ws.progress):
            per_group = {}
            for ds, qa in corpora:
                per = _search_metrics(qa, ds.questions, "hybrid", fusion, METRIC_KS, False, "")
                per_group.update({f"{ds.name}/{lang}": {n: m[n] for n in SWEEP_METRICS}
                                  for lang, m in per.items() if lang != "all"})
            rows.append(_sweep_row(fusion, per_group, legs, groups))
        rows.sort(key=lambda r: (not r["ok"], -r["score"]))
        return {
            "datasets": [ds.name for ds in sets], "distractors": [d.name for d in others],
            "questions": sum(len(ds.questions) for ds in sets), "groups": groups, "legs": legs,
            "rows": rows, "best": rows[0],
            "default": next(r for r in rows if r["fusion"] == default.to_dict()),
            "seconds": round(time.perf_counter() - started, 2),
        }


def _sweep_row(fusion: Fusion, per_group: dict, legs: dict, groups: list[str]) -> dict:
    means = {f"mean_{n}": round(float(np.mean([per_group[g][n] for g in groups])), 4) for n in SWEEP_METRICS}
    margins = {g: {n: round(per_group[g][n] - max(legs["bm25"][g][n], legs["dense"][g][n]), 4) for n in SWEEP_METRICS}
               for g in groups}
    worst = min(v for m in margins.values() for v in m.values())
    return {"fusion": fusion.to_dict(), "label": fusion.label(), **means,
            "score": round(float(np.mean(list(means.values()))), 4), "worst_margin": worst,
            "ok": worst >= -ACCEPT_MARGIN, "groups": per_group}


# ---------------------------------------------------------------------------------- no-answer calibration


def calibrate(answerable: Sequence[str | Path], unanswerable: Sequence[str | Path], *,
              seeds: str | Path | None = "seeds", limit: int | None = None, embedder=None,
              model: str | None = None, index_dir: str | Path | None = None, progress: bool = False,
              workspace: Workspace | None = None) -> dict:
    """Choose the no-answer threshold on the cosine of the best highlighted sentence.

    Answerable: the questions of the `answerable` sets asked against an index of their own
    passages. Unanswerable: the same questions asked against an index of the `unanswerable` sets'
    passages, which do not hold the answers. The threshold maximises balanced accuracy (mean of
    the rates of answerable questions found and unanswerable ones refused); among equally good
    thresholds, the middle of the best range.

    Returns:
        {"threshold", "balanced_accuracy", "answerable"/"unanswerable" (quantiles, by language),
        "current" (the same numbers at today's NO_ANSWER_COSINE), "seed_checks", "seconds"}.
    """
    from .answer import NO_ANSWER_COSINE

    with _workspace(workspace, embedder=embedder, model=model, index_dir=index_dir, progress=progress) as ws:
        started = time.perf_counter()
        sets = [load_dataset(d, limit=limit) for d in answerable]
        negatives = [load_passages(d) for d in unanswerable]
        questions = [q for ds in sets for q in ds.questions]
        ws.embedder.encode_queries([q.text for q in questions], progress=ws.progress)
        fusion = Fusion.defaults()
        qa_pos, _ = ws.index([ds.passages for ds in sets])
        qa_neg, _ = ws.index([ds.passages for ds in negatives])
        scores = {}
        for label, qa in (("answerable", qa_pos), ("unanswerable", qa_neg)):
            _use_fusion(qa, fusion)
            scores[label] = np.array([top_cosine(qa.ask(q.text, k=ASK_K)) for q in _bar(questions, f"ask ({label})", ws.progress)])
        threshold = choose_threshold(scores["answerable"], scores["unanswerable"])
        langs = np.array([q.lang for q in questions])
        result = {
            "answerable_sets": [ds.name for ds in sets], "unanswerable_sets": [ds.name for ds in negatives],
            "questions": len(questions),
            "threshold": threshold,
            **_separation(scores["answerable"], scores["unanswerable"], threshold),
            "current": {"threshold": NO_ANSWER_COSINE,
                        **_separation(scores["answerable"], scores["unanswerable"], NO_ANSWER_COSINE)},
            "by_language": {},
        }
        for lang in sorted(set(langs)):
            pos, neg = scores["answerable"][langs == lang], scores["unanswerable"][langs == lang]
            own_best = choose_threshold(pos, neg)
            result["by_language"][lang] = {**_separation(pos, neg, threshold),
                                           "own_best": {"threshold": own_best, **_separation(pos, neg, own_best)}}
        for label in ("answerable", "unanswerable"):
            result[label] = {"all": _quantiles(scores[label]),
                             **{lang: _quantiles(scores[label][langs == lang]) for lang in sorted(set(langs))}}
        result["seed_checks"] = _seed_checks(ws, Path(seeds), threshold) if seeds and Path(seeds).exists() else []
        result["seconds"] = round(time.perf_counter() - started, 2)
        return result


def choose_threshold(positive: np.ndarray, negative: np.ndarray, *, step: float = 0.001) -> float:
    """The cut (positive if score >= cut), on a grid of `step`, with the best balanced accuracy.

    Among equally good cuts, the middle of the widest run of them, so the choice does not hinge
    on one question.
    """
    positive, negative = np.sort(np.asarray(positive, float)), np.sort(np.asarray(negative, float))
    if not len(positive) or not len(negative):
        raise ValueError("calibration needs both answerable and unanswerable scores")
    lo = np.floor(min(positive[0], negative[0]) / step)
    hi = np.ceil(max(positive[-1], negative[-1]) / step) + 1
    cuts = np.arange(lo, hi + 1) * step
    tpr = 1 - np.searchsorted(positive, cuts - 1e-12, side="left") / len(positive)
    tnr = np.searchsorted(negative, cuts - 1e-12, side="left") / len(negative)
    balanced = (tpr + tnr) / 2
    best = np.flatnonzero(balanced >= balanced.max() - 1e-12)
    runs = np.split(best, np.flatnonzero(np.diff(best) > 1) + 1)
    widest = max(runs, key=len)
    decimals = max(0, -int(np.floor(np.log10(step))))
    return round(float(cuts[(widest[0] + widest[-1]) // 2]), decimals)


def _separation(positive: np.ndarray, negative: np.ndarray, threshold: float) -> dict:
    tpr = float(np.mean(positive >= threshold)) if len(positive) else None
    tnr = float(np.mean(negative < threshold)) if len(negative) else None
    out = {"answerable_found": _round(tpr), "unanswerable_refused": _round(tnr)}
    out["balanced_accuracy"] = _round((tpr + tnr) / 2) if tpr is not None and tnr is not None else None
    return out


def _quantiles(values: np.ndarray) -> dict:
    if not len(values):
        return {"n": 0}
    return {"n": int(len(values)), "mean": round(float(np.mean(values)), 4),
            **{f"q{int(q * 100):02d}": round(float(np.quantile(values, q)), 4) for q in QUANTILES}}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _seed_checks(ws: Workspace, seeds: Path, threshold: float) -> list[dict]:
    from .corpus import iter_corpus_files

    qa, _ = ws.index(iter_corpus_files([seeds]))
    _use_fusion(qa, Fusion.defaults())
    checks = []
    for question, expected in SEED_CHECKS:
        score = top_cosine(qa.ask(question, k=ASK_K))
        checks.append({"question": question, "expected": expected, "score": round(score, 4),
                       "found": score >= threshold, "ok": (score >= threshold) == expected})
    return checks


# ---------------------------------------------------------------------------------- output


def to_markdown(result: dict) -> str:
    """A readable Markdown rendering of a run's result (reports, sweep, calibration)."""
    out: list[str] = []
    for rep in result.get("reports", []):
        title = rep["dataset"] + (f" + distractors ({', '.join(rep['distractors'])})" if rep["distractors"] else "")
        out += [f"## {title}", "",
                f"{rep['questions']} questions, {rep['corpus']['passages']} passages ({rep['corpus']['chunks']} chunks), "
                f"model {rep['model']}, fusion {Fusion(**rep['fusion']).label()}.", ""]
        names = [n for n in next(iter(next(iter(rep["metrics"].values())).values())) if n != "n"]
        out += ["| language | mode | n | " + " | ".join(names) + " |", "|---|---|---:|" + "---:|" * len(names)]
        langs = list(next(iter(rep["metrics"].values())))
        for lang in langs:
            for mode, per in rep["metrics"].items():
                m = per[lang]
                out.append(f"| {lang} | {mode} | {m['n']} | " + " | ".join(f"{m[n]:.3f}" for n in names) + " |")
        if rep.get("answers"):
            out += ["", "| language | answer_found | gold cited (top 5) | questions with answer string | answer sentence acc. | acc. when cited |",
                    "|---|---:|---:|---:|---:|---:|"]
            for lang, a in rep["answers"].items():
                out.append(f"| {lang} | {a['answer_found']:.3f} | {a['gold_cited']:.3f} | {a['answer_questions']} | "
                           f"{_fmt(a['answer_sentence_accuracy'])} | {_fmt(a['answer_sentence_accuracy_when_cited'])} |")
        if rep.get("checks"):
            out += ["", "Checks: " + "; ".join(
                f"{lang}: " + ", ".join(f"{k} {v:+.3f}" for k, v in c.get("margins", {}).items())
                + "".join(f"{k} {v:.3f}" for k, v in c.items() if k.endswith("_gap"))
                + (" ok" if c["ok"] else " FAIL") for lang, c in rep["checks"].items())]
        out += ["", "Seconds: " + ", ".join(f"{k} {v:g}" for k, v in rep["seconds"].items())
                + (" (index from cache)" if rep["corpus"]["index_cached"] else ""), ""]
    if sw := result.get("sweep"):
        out += ["## Fusion sweep", "",
                f"{sw['questions']} questions of {', '.join(sw['datasets'])}"
                + (f" with distractors ({', '.join(sw['distractors'])})" if sw["distractors"] else "")
                + f"; groups: {', '.join(sw['groups'])}. Score = mean of mean MRR@10 and mean R@5; "
                f"worst margin = lowest (hybrid - better leg) over groups and both metrics.", "",
                "| leg | " + " | ".join(f"{g} R@5 / MRR@10" for g in sw["groups"]) + " |",
                "|---|" + "---:|" * len(sw["groups"])]
        for mode, per in sw["legs"].items():
            out.append(f"| {mode} | " + " | ".join(f"{per[g]['R@5']:.3f} / {per[g]['MRR@10']:.3f}" for g in sw["groups"]) + " |")
        out += ["", "| rrf k | bm25:dense | depth | mean MRR@10 | mean R@5 | score | worst margin | ok |",
                "|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in sw["rows"]:
            f = r["fusion"]
            mark = " (best)" if r is sw["best"] or r == sw["best"] else (" (default)" if r == sw["default"] else "")
            out.append(f"| {f['rrf_k']} | {f['weights']['bm25']:g}:{f['weights']['dense']:g} | {f['depth']} | "
                       f"{r['mean_MRR@10']:.4f} | {r['mean_R@5']:.4f} | {r['score']:.4f} | {r['worst_margin']:+.4f} | "
                       f"{'yes' if r['ok'] else 'no'}{mark} |")
        out += ["", f"Best: {sw['best']['label']} (score {sw['best']['score']:.4f}); "
                f"current default: {sw['default']['label']} (score {sw['default']['score']:.4f}). "
                f"{sw['seconds']:g} s.", ""]
    if cal := result.get("calibration"):
        out += ["## No-answer calibration", "",
                f"Answerable: {cal['questions']} questions of {', '.join(cal['answerable_sets'])} against their own passages; "
                f"unanswerable: the same questions against {', '.join(cal['unanswerable_sets'])}.", "",
                "| questions | language | n | mean | " + " | ".join(f"q{int(q * 100):02d}" for q in QUANTILES) + " |",
                "|---|---|---:|---:|" + "---:|" * len(QUANTILES)]
        for label in ("answerable", "unanswerable"):
            for lang, s in cal[label].items():
                out.append(f"| {label} | {lang} | {s['n']} | {s['mean']:.4f} | "
                           + " | ".join(f"{s[f'q{int(q * 100):02d}']:.4f}" for q in QUANTILES) + " |")
        out += ["", "| threshold | answerable found | unanswerable refused | balanced accuracy |", "|---|---:|---:|---:|",
                f"| chosen {cal['threshold']} | {cal['answerable_found']:.3f} | {cal['unanswerable_refused']:.3f} | {cal['balanced_accuracy']:.3f} |",
                f"| current {cal['current']['threshold']} | {cal['current']['answerable_found']:.3f} | "
                f"{cal['current']['unanswerable_refused']:.3f} | {cal['current']['balanced_accuracy']:.3f} |"]
        for lang, s in cal["by_language"].items():
            b = s["own_best"]
            out.append(f"| {lang} questions at {cal['threshold']} | {s['answerable_found']:.3f} | "
                       f"{s['unanswerable_refused']:.3f} | {s['balanced_accuracy']:.3f} |")
            out.append(f"| {lang} questions at their own best {b['threshold']} | {b['answerable_found']:.3f} | "
                       f"{b['unanswerable_refused']:.3f} | {b['balanced_accuracy']:.3f} |")
        if cal["seed_checks"]:
            out += ["", "| seed question | expected | score | found | ok |", "|---|---|---:|---|---|"]
            for c in cal["seed_checks"]:
                out.append(f"| {c['question']} | {c['expected']} | {c['score']:.4f} | {c['found']} | {'yes' if c['ok'] else 'NO'} |")
        out += ["", f"{cal['seconds']:g} s.", ""]
    return "\n".join(out)


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def plot(result: dict, path: str | Path, *, metrics: Sequence[str] = ("R@5", "MRR@10")) -> Path | None:
    """Bar chart comparing the modes per dataset and language (PNG, matplotlib Agg); None if nothing to plot."""
    reports = [r for r in result.get("reports", []) if r["metrics"]]
    if not reports:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [(r, lang) for r in reports for lang in next(iter(r["metrics"].values())) if lang != "all"]
    modes = [m for m in MODES if any(m in r["metrics"] for r in reports)]
    fig, axes = plt.subplots(len(metrics), 1, figsize=(max(6.0, 1.3 * len(groups) + 2), 3.2 * len(metrics)), squeeze=False)
    width = 0.8 / len(modes)
    for ax, metric in zip(axes[:, 0], metrics):
        for i, mode in enumerate(modes):
            values = [r["metrics"].get(mode, {}).get(lang, {}).get(metric, 0.0) for r, lang in groups]
            ax.bar(np.arange(len(groups)) + (i - (len(modes) - 1) / 2) * width, values, width, label=mode)
        ax.set_xticks(np.arange(len(groups)))
        ax.set_xticklabels([f"{r['dataset']}{' +d' if r['distractors'] else ''}\n{lang}" for r, lang in groups], fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel(metric)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    axes[0, 0].set_title("Retrieval by mode per set and question language (+d: with distractors)", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_outputs(result: dict, out_dir: str | Path) -> list[Path]:
    """Write report.json, report.md and (if there are reports) modes.png into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text("# Evaluation report\n\n" + to_markdown(result), encoding="utf-8")
    written = [out / "report.json", out / "report.md"]
    if png := plot(result, out / "modes.png"):
        written.append(png)
    return written


# ---------------------------------------------------------------------------------- command line


def add_arguments(p) -> None:
    """The `qa eval` options (cli.py owns the subcommand, this module its arguments)."""
    p.add_argument("datasets", nargs="+", metavar="DATASET_DIR", help="dataset folders (passages.jsonl + questions.jsonl)")
    p.add_argument("--mode", choices=[*MODES, "all"], default="all", help="search mode to evaluate (default: all)")
    p.add_argument("--k", dest="ks", type=int, nargs="+", default=list(METRIC_KS), metavar="K",
                   help="recall cutoffs; MRR and nDCG at the largest (default: 1 5 10)")
    p.add_argument("--distractors", nargs="+", default=[], metavar="DATASET_DIR",
                   help="add these sets' passages to the index (gold stays the evaluated set's)")
    p.add_argument("--limit", type=int, default=None, help="evaluate a fixed random sample of N questions per set")
    p.add_argument("--no-answers", action="store_true", help="skip qa.ask (answer_found, answer-sentence accuracy)")
    p.add_argument("--sweep", action="store_true", help="try RRF k, leg weights and depth instead of the evaluation")
    p.add_argument("--calibrate", nargs="+", default=None, metavar="DATASET_DIR",
                   help="calibrate the no-answer threshold instead of the evaluation: the DATASET_DIRs' "
                        "questions against their own passages versus against these sets' passages")
    p.add_argument("--seeds", default="seeds", help="corpus for the hand-written no-answer checks (default: seeds/)")
    p.add_argument("--model", default=None, help="embedding model (default: bundled multilingual-e5-small)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write report.json, report.md and modes.png here, and keep indexes in DIR/index")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args) -> int:
    """Run `qa eval` from parsed arguments; prints JSON or Markdown."""
    if args.limit is not None and args.limit < 1:
        raise QAError(f"--limit must be at least 1, got {args.limit}")
    if any(k < 1 for k in args.ks):
        raise QAError(f"--k values must be at least 1, got {args.ks}")
    for folder in [*args.datasets, *args.distractors, *(args.calibrate or [])]:
        if not Path(folder).is_dir():
            raise DatasetError(f"{folder}: no such dataset folder")
    modes = MODES if args.mode == "all" else (args.mode,)
    index_dir = Path(args.out) / "index" if args.out else None
    result: dict = {}
    with Workspace(model=args.model, index_dir=index_dir, progress=sys.stderr.isatty()) as ws:
        if args.sweep:
            result["sweep"] = sweep(args.datasets, distractors=args.distractors, limit=args.limit, workspace=ws)
        if args.calibrate:
            result["calibration"] = calibrate(args.datasets, args.calibrate, seeds=args.seeds, limit=args.limit, workspace=ws)
        if not (args.sweep or args.calibrate):
            result["reports"] = [
                evaluate(d, modes=modes, distractors=args.distractors, ks=args.ks, limit=args.limit,
                         answers=not args.no_answers, workspace=ws)
                for d in args.datasets
            ]
    if args.out:
        written = write_outputs(result, args.out)
        print(f"wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    print(json.dumps(result, ensure_ascii=False, indent=2) if args.json else to_markdown(result))
    return 0
