"""Ask questions through the whole pipeline with written answers on, and count what the grounding
check does with them.

    python scripts/llm_answers.py --llm-url http://127.0.0.1:8080/v1 --llm-model smollm2 \
        --corpus seeds data/ntrex_nl/passages.jsonl --index /tmp/llm-index -k 3

The questions (tests/data/grounding/questions.jsonl) carry a regular expression, written by hand
from the passages, that a right answer matches; a verified answer that does not is counted as
verified but wrong. One JSON line per question, then a summary on standard error.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa import QA  # noqa: E402
from qa.generate import generate_answer, load_generator  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm-url", required=True)
    parser.add_argument("--llm-model", required=True)
    parser.add_argument("--corpus", nargs="+", default=["seeds"], help="what the index is built from")
    parser.add_argument("--index", default="index")
    parser.add_argument("--questions", default=str(ROOT / "tests" / "data" / "grounding" / "questions.jsonl"))
    parser.add_argument("-k", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=150)
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    qa = QA.open_or_build(args.corpus, args.index, follow=False)
    generator = load_generator(args.llm_url, args.llm_model, timeout=args.timeout, max_tokens=args.max_tokens)
    rows = []
    for line in Path(args.questions).read_text(encoding="utf-8").splitlines():
        q = json.loads(line)
        answer = qa.ask(q["question"], k=args.k)
        start = time.monotonic()
        g = generate_answer(answer, generator, qa.embedder).generated
        seconds = time.monotonic() - start
        right = bool(re.search(q["expect"], g.text, re.IGNORECASE))
        rows.append((q, g, right, seconds))
        print(json.dumps({"id": q["id"], "question": q["question"], "answer_found": answer.answer_found,
                          "verified": g.verified, "right": right, "seconds": round(seconds, 2), "text": g.text,
                          "reasons": list(g.reasons)}, ensure_ascii=False), flush=True)
    verified = [r for r in rows if r[1].verified]
    seconds = sorted(r[3] for r in rows)
    reasons = Counter(re.sub(r"“[^”]*”|\[\d+\]|\d+(\.\d+)?", "_", g.reasons[0]) for _, g, _, _ in rows if g.reasons)
    print(f"{len(rows)} questions: {len(rows) - len(verified)} rejected, {len(verified)} verified "
          f"({sum(r[2] for r in verified)} of them right by the hand-written expectation); "
          f"{sum(r[2] for r in rows)} of all texts match the expectation. Seconds per answer: median "
          f"{seconds[len(seconds) // 2]:.1f}, max {seconds[-1]:.1f}.", file=sys.stderr)
    for reason, n in reasons.most_common():
        print(f"  {n:3d}  {reason}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
