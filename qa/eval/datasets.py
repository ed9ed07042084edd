"""Evaluation datasets: a folder with `passages.jsonl` (the corpus) and `questions.jsonl`.

`passages.jsonl` holds id, text and optional title and lang; `questions.jsonl` holds id,
question, lang, answer_passage_ids and an optional answer (see EVALUATION.md).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import QAError

PASSAGES_FILE, QUESTIONS_FILE = "passages.jsonl", "questions.jsonl"
SAMPLE_SEED = 0           # `limit` draws the same questions every run


class DatasetError(QAError):
    """An evaluation dataset folder is missing a file or has a bad record."""


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
    texts = {str(r["id"]): r.get("text", "") for r in read_records(passages, ("id", "text"))}
    records = read_records(questions_file, ("id", "question", "answer_passage_ids"))
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
            from ..language import detect_language
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


def corpus_files(dataset: Dataset, distractors: Iterable[Dataset]) -> list[Path]:
    """The passage files of a dataset's index: its own, then the distractors' (itself left out)."""
    own = dataset.passages.resolve()
    return [dataset.passages] + [d.passages for d in distractors if d.passages.resolve() != own]


def read_records(path: Path, required: tuple[str, ...]) -> list[dict]:
    """The JSON objects of a JSONL file, each with the `required` keys (DatasetError otherwise)."""
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
