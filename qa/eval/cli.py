"""The `qa eval` arguments and what the subcommand runs (qa/cli.py owns the subcommand itself)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import QAError
from .calibrate import calibrate
from .datasets import DatasetError
from .evaluate import evaluate
from .followups import evaluate_followups, is_followup_set
from .metrics import METRIC_KS, MODES
from .news import evaluate_news, is_news_set
from .report import to_markdown, write_outputs
from .sweep import sweep
from .workspace import Workspace


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
            sets = [d for d in args.datasets if not (is_followup_set(d) or is_news_set(d))]
            result["reports"] = [
                evaluate(d, modes=modes, distractors=args.distractors, ks=args.ks, limit=args.limit,
                         answers=not args.no_answers, workspace=ws)
                for d in sets
            ]
            if followups := [d for d in args.datasets if is_followup_set(d)]:
                result["followups"] = [evaluate_followups(d, distractors=args.distractors, workspace=ws) for d in followups]
            if news := [d for d in args.datasets if is_news_set(d)]:
                result["news"] = [evaluate_news(d, workspace=ws) for d in news]
    if args.out:
        written = write_outputs(result, args.out)
        print(f"wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    print(json.dumps(result, ensure_ascii=False, indent=2) if args.json else to_markdown(result))
    return 0
