"""`evaluate_followups`: multi-turn conversations, asked with and without the earlier turns.

A follow-up set is a folder with `passages.jsonl` (the corpus, as for the other sets) and
`conversations.jsonl`: {"id", "lang", "kind": "followup" | "standalone", "turns": [{"question",
"answer", "gold": [passage ids]}, ...]}. In a "followup" conversation the later turns lean on the
earlier ones ("Hoeveel is daar bevrijd?"); in a "standalone" one turn 2 is a complete question on
another article, which the earlier turn must not drag along.

The set's passages are indexed as the articles they come from (passages with the same `doc_id`,
joined by blank lines): a follow-up is about the article the conversation is on, which passages
indexed one by one would hide. A turn counts as answered when its answer phrase is inside the
highlight of one of the first TOP_K citations (case-insensitive), and as found when one of them
overlaps a gold passage (by offsets in its article).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from .datasets import PASSAGES_FILE, Dataset, DatasetError, corpus_files, load_passages, read_records
from .metrics import rounded_mean
from .workspace import Workspace, progress_bar, shared_workspace

CONVERSATIONS_FILE = "conversations.jsonl"
TOP_K = 3
ARTICLE_JOIN = "\n\n"   # between the paragraphs (passages) of an article
KINDS = ("followup", "standalone")


def is_followup_set(folder: str | Path) -> bool:
    """Whether a dataset folder holds conversations (rather than questions.jsonl)."""
    return (Path(folder) / CONVERSATIONS_FILE).is_file()


def load_conversations(folder: str | Path) -> list[dict]:
    """Read and check conversations.jsonl.

    Raises:
        DatasetError: the file is missing, a line is not a conversation, or a gold id is unknown.
    """
    folder = Path(folder)
    path, passages = folder / CONVERSATIONS_FILE, folder / PASSAGES_FILE
    for p in (path, passages):
        if not p.is_file():
            raise DatasetError(f"{p} is missing; a follow-up set holds {PASSAGES_FILE} and {CONVERSATIONS_FILE}")
    ids = {str(json.loads(line)["id"]) for line in passages.read_text(encoding="utf-8").splitlines() if line.strip()}
    conversations = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            c = json.loads(line)
            turns = [(str(t["question"]).strip(), str(t["answer"]), [str(g) for g in t["gold"]]) for t in c["turns"]]
            ok = c["kind"] in KINDS and len(turns) >= 2 and all(q and a and gold for q, a, gold in turns)
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise DatasetError(f"{path}:{number}: expected a conversation with a kind ({', '.join(KINDS)}) and two or "
                               "more turns, each with question, answer and gold")
        unknown = [g for _, _, gold in turns for g in gold if g not in ids]
        if unknown:
            raise DatasetError(f"{path}:{number}: gold passages {unknown} are not in {PASSAGES_FILE}; fix the dataset")
        conversations.append({"id": str(c["id"]), "lang": c.get("lang", "nl"), "kind": c["kind"], "turns": turns})
    if not conversations:
        raise DatasetError(f"{path} has no conversations")
    return conversations


def evaluate_followups(folder: str | Path, *, distractors: Sequence[str | Path] = (), embedder=None,
                       model: str | None = None, index_dir: str | Path | None = None, progress: bool = False,
                       workspace: Workspace | None = None) -> dict:
    """Ask every later turn with the earlier turns as history and alone; report both.

    Returns:
        {"dataset", "conversations", "kinds" (counts), "results": {kind: {language or "all": {"n",
        "with_context", "alone", "found_with_context", "found_alone", "context_used"}}}, "first_turns"
        (the same for turn 1, asked alone), "seconds"}.
    """
    with shared_workspace(workspace, embedder=embedder, model=model, index_dir=index_dir, progress=progress) as ws:
        started = time.perf_counter()
        conversations = load_conversations(folder)
        own = load_passages(folder)
        articles, spans = articles_file(own, ws.index_root / "articles")
        qa, _ = ws.index([articles, *corpus_files(own, [load_passages(d) for d in distractors])[1:]])
        rows: dict[str, list] = {"first": []}
        for c in progress_bar(conversations, f"{own.name} conversations", ws.progress):
            history = []
            for n, (question, phrase, gold) in enumerate(c["turns"]):
                gold_spans = [spans[g] for g in gold]
                alone = _judge(qa.ask(question, k=TOP_K), phrase, gold_spans)
                if n == 0:
                    rows["first"].append((c["lang"], alone, alone, False))
                else:
                    answer = qa.ask(question, k=TOP_K, history=history)
                    rows.setdefault(c["kind"], []).append((c["lang"], _judge(answer, phrase, gold_spans), alone,
                                                           bool(answer.context)))
                history.append(question)
        return {
            "dataset": own.name, "conversations": len(conversations),
            "kinds": {k: sum(c["kind"] == k for c in conversations) for k in KINDS},
            "results": {kind: _summary(rs) for kind, rs in rows.items() if kind != "first"},
            "first_turns": _summary(rows["first"]),
            "seconds": round(time.perf_counter() - started, 2),
        }


def articles_file(dataset: Dataset, folder: Path) -> tuple[Path, dict[str, tuple[str, int, int]]]:
    """The dataset's passages joined into their articles, written as `folder/<name>/passages.jsonl`
    (rewritten only when it changes, so a cached index stays valid).

    Returns:
        (the file, {passage id: (article id, start, end)}): where each passage is in its article.
    """
    articles: dict[str, dict] = {}
    spans = {}
    for p in read_records(dataset.passages, ("id", "text")):
        article_id = str(p.get("doc_id") or p["id"])
        a = articles.setdefault(article_id, {"id": article_id, "text": "", "title": p.get("title"), "lang": p.get("lang"),
                                             "date": p.get("date")})
        if a["text"]:
            a["text"] += ARTICLE_JOIN
        text = p["text"].replace("\r\n", "\n").strip()  # as the corpus reader keeps it: offsets stay true
        spans[str(p["id"])] = (article_id, len(a["text"]), len(a["text"]) + len(text))
        a["text"] += text
    path = Path(folder) / dataset.name / PASSAGES_FILE
    text = "".join(json.dumps({k: v for k, v in a.items() if v}, ensure_ascii=False) + "\n" for a in articles.values())
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return path, spans


def _judge(answer, phrase: str, gold: list[tuple[str, int, int]]) -> tuple[bool, bool]:
    cited = answer.citations[:TOP_K]
    return (any(phrase.casefold() in c.highlight.text.casefold() for c in cited),
            any(c.doc_id == article and c.start < end and c.end > start for c in cited for article, start, end in gold))


def _summary(rows: list) -> dict:
    groups: dict[str, list] = {"all": rows}
    for row in rows:
        groups.setdefault(row[0], []).append(row)
    return {g: {"n": len(rs),
                "with_context": rounded_mean([r[1][0] for r in rs]), "alone": rounded_mean([r[2][0] for r in rs]),
                "found_with_context": rounded_mean([r[1][1] for r in rs]), "found_alone": rounded_mean([r[2][1] for r in rs]),
                "context_used": rounded_mean([r[3] for r in rs])}
            for g, rs in groups.items()}
