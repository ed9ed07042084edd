"""Command line: `qa build`, `qa sync`, `qa add`, `qa remove`, `qa ask`, `qa info`, `qa eval`, `qa serve`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from .corpus import CorpusWarning
from .errors import QAError, QuestionError, RebuildWarning

DEFAULT_CORPUS = "seeds"
DEFAULT_INDEX = "index"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # `qa eval` parses its own arguments (qa/eval/cli.py): the evaluation tooling is imported
    # only when it runs, never by the other commands.
    args, rest = parser.parse_known_args(argv)
    if rest and getattr(args, "command", None) != "eval":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    default_format = warnings.formatwarning
    warnings.formatwarning = _format_warning
    try:
        return args.run(args)
    except QAError as exc:
        # Messages name corpus files and ids, which are untrusted: no raw control characters.
        print(f"error: {_inert(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `qa ask … | head`: the reader has gone; no traceback, and none at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    finally:
        warnings.formatwarning = default_format


def _format_warning(message, category, filename, lineno, line=None) -> str:
    if issubclass(category, (CorpusWarning, RebuildWarning)):
        return f"warning: {_inert(str(message))}\n"
    return _FORMATWARNING(message, category, filename, lineno, line)


_FORMATWARNING = warnings.formatwarning


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qa", description="Question answering over Dutch news, with cited passages.")
    sub = p.add_subparsers(dest="command")

    b = sub.add_parser("build", help="index news texts (.txt, .md, .jsonl)")
    b.add_argument("paths", nargs="*", default=[DEFAULT_CORPUS], help=f"files or folders (default: {DEFAULT_CORPUS}/)")
    b.add_argument("--index", default=DEFAULT_INDEX, help=f"index folder (default: {DEFAULT_INDEX}/)")
    b.add_argument("--model", default=None, help="sentence-transformers model name or folder (default: bundled multilingual-e5-small)")
    b.add_argument("--skip-bad", action="store_true", help="skip unreadable files with a warning instead of stopping")
    b.add_argument("--dense", choices=("auto", "flat", "hnsw"), default="auto",
                   help="dense index: exact (flat), approximate (hnsw), or auto: flat up to 50,000 chunks (default)")
    b.add_argument("--sentence-vectors", action="store_true",
                   help="also embed and keep every sentence: answers need no embedding for their highlights "
                        "(asking 4-20x faster the first time a passage is cited; the build embeds ~1.8-2x as long)")
    b.add_argument("--json", action="store_true", help="print the index summary as JSON")
    b.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="read, chunk and embed on a Ray cluster (needs the [scale] extra): at ADDRESS, or a local "
                        "one when none is given (put --ray after the paths)")
    b.add_argument("--shards", type=int, default=None, metavar="N",
                   help="write N date-range shards (INDEX/shard-00 …, each a normal index) and the statistics that "
                        "make them answer as one index (qa serve --shards INDEX)")
    b.set_defaults(run=_build)

    s = sub.add_parser("sync", help="bring the index in line with the corpus, embedding only new and changed articles")
    s.add_argument("paths", nargs="*", default=[DEFAULT_CORPUS], help=f"files or folders (default: {DEFAULT_CORPUS}/)")
    s.add_argument("--index", default=DEFAULT_INDEX, help=f"index folder (default: {DEFAULT_INDEX}/)")
    s.add_argument("--model", default=None, help="embedding model (default: the index's); another one embeds everything again")
    s.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable files with a warning (indexed articles of such files are kept as they were)")
    s.add_argument("--dense", choices=("auto", "flat", "hnsw"), default=None,
                   help="dense index kind (default: what the index was made with)")
    s.add_argument("--sentence-vectors", action=argparse.BooleanOptionalAction, default=None,
                   help="keep (or drop) every sentence's vector for fast highlights (default: as the index does)")
    s.add_argument("--json", action="store_true", help="print the report as one JSON object")
    s.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="embed new chunks on a Ray cluster (at ADDRESS, or a local one); a shard root's shards are "
                        "synced together")
    s.set_defaults(run=_sync)

    ad = sub.add_parser("add", help="add articles (files) to the index, replacing those with the same ids")
    ad.add_argument("files", nargs="+", help=".txt, .md or .jsonl files (or folders)")
    ad.add_argument("--index", default=DEFAULT_INDEX, help=f"index folder (default: {DEFAULT_INDEX}/)")
    ad.add_argument("--skip-bad", action="store_true", help="skip unreadable files and lines with a warning")
    ad.add_argument("--json", action="store_true", help="print the report as one JSON object")
    ad.set_defaults(run=_add)

    r = sub.add_parser("remove", help="remove articles from the index by their doc_id")
    r.add_argument("doc_ids", nargs="+", metavar="DOC_ID", help="the doc_id of each article (a file's path in its "
                                                                  "corpus folder, or a JSONL line's id)")
    r.add_argument("--index", default=DEFAULT_INDEX, help=f"index folder (default: {DEFAULT_INDEX}/)")
    r.add_argument("--json", action="store_true", help="print the report as one JSON object")
    r.set_defaults(run=_remove)

    a = sub.add_parser("ask", help="answer a question with cited passages")
    a.add_argument("question", nargs="+",
                   help='the question; several are answered in turn with the index loaded once, and "-" reads '
                        "one question per line from standard input")
    a.add_argument("--index", default=DEFAULT_INDEX)
    a.add_argument("--model", default=None, help="check that the index was built with this model")
    a.add_argument("-k", type=int, default=5, help="number of cited passages (default 5)")
    a.add_argument("--json", action="store_true", help="print one JSON object")
    a.add_argument("--chat", action="store_true",
                   help="the questions are one conversation: a follow-up (\"Hoeveel is daar bevrijd?\") is "
                        "searched together with the questions before it")
    a.add_argument("--llm-url", default=None, metavar="URL",
                   help="also ask a language model at this OpenAI-compatible endpoint (e.g. http://127.0.0.1:8080/v1; "
                        "default $NIEUWS_QA_LLM_URL; API key from $NIEUWS_QA_LLM_API_KEY) for a written answer, "
                        "shown only if it passes the grounding check")
    a.add_argument("--llm-model", default=None, metavar="NAME", help="the model to ask (default $NIEUWS_QA_LLM_MODEL)")
    a.add_argument("--since", default=None, metavar="YYYY-MM-DD", help="only articles dated on or after this day")
    a.add_argument("--until", default=None, metavar="YYYY-MM-DD", help="only articles dated on or before this day")
    a.add_argument("--publisher", action="append", default=None, metavar="NAME",
                   help="only articles of this publisher (repeat for several)")
    a.add_argument("--now", default=None, metavar="YYYY-MM-DD",
                   help="'today' for time words in the question such as 'vorige week' (default: the newest article's date)")
    a.add_argument("--no-time-filter", action="store_true",
                   help="do not turn time words in the question ('in oktober 2022') into a date filter")
    a.add_argument("--latest", action=argparse.BooleanOptionalAction, default=None,
                   help="weigh newer articles up (default: when the question asks for the latest news)")
    a.add_argument("--server", default=None, metavar="URL",
                   help="ask a `qa serve` endpoint (e.g. http://127.0.0.1:8000/) instead of a local index")
    a.set_defaults(run=_ask)

    sv = sub.add_parser("serve", help="serve a sharded index over HTTP on Ray Serve (needs the [scale] extra)")
    sv.add_argument("--shards", nargs="+", required=True, metavar="DIR",
                    help="a shard root (qa build --shards N --index DIR) or all of its shard folders")
    sv.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                    help="the Ray cluster to deploy on (default: start a local one)")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sv.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    sv.add_argument("--timeout", type=float, default=3.0, metavar="S",
                    help="seconds to wait for the shards per question; a shard that misses it is named in the "
                         "answer as not searched (default 3)")
    sv.add_argument("--replicas", type=int, default=1, help="replicas per shard (default 1)")
    sv.add_argument("--model", default=None, help="the embedding model (default: the shards')")
    sv.set_defaults(run=_serve)

    i = sub.add_parser("info", help="describe an index")
    i.add_argument("--index", default=DEFAULT_INDEX)
    i.add_argument("--json", action="store_true")
    i.set_defaults(run=_info)

    e = sub.add_parser("eval", add_help=False, help="evaluate retrieval and answers on question sets "
                                                    "(needs the [eval] extra; qa eval --help for its options)")
    e.set_defaults(run=_eval)
    return p


def _build(args) -> int:
    from .api import QA

    if args.shards is not None and args.sentence_vectors:
        raise QAError("--sentence-vectors is not available with --shards yet; build without it")
    if args.shards is not None or args.ray is not None or _is_shard_root(args.index):
        from .scale import commands

        if args.shards is None and _is_shard_root(args.index):
            raise QAError(f"{args.index} holds shards; build them again with --shards N, or give another --index")
        embedder = commands.ray_embedder(args, [Path(args.index)], sync=False) if args.ray is not None else None
        if args.shards is not None:
            report = commands.build_shards(args, embedder)
            print(to_json(report.to_dict(), indent=2) if args.json else f"{args.index}/: {_clean(report.summary())}")
            return 0
    else:
        embedder = None
    qa = QA.build(args.paths, args.index, args.model, skip_bad=args.skip_bad, dense=args.dense,
                  progress=sys.stderr.isatty(), embedder=embedder, sentence_vectors=args.sentence_vectors)
    info = qa.info()
    if args.json:
        print(to_json(info, indent=2))
    else:
        print(f"indexed {info['documents']} documents as {info['chunks']} chunks with {info['model']['name']} into {args.index}/")
        news = info["news"]
        if news["undated"]:
            print(f"{news['undated']} articles without a readable date, left out of date filters: "
                  + _clean(", ".join(news["undated_examples"])) + (" …" if news["undated"] > len(news["undated_examples"]) else ""))
    return 0


def _sync(args) -> int:
    from .api import QA

    embedder = None
    if args.ray is not None or _is_shard_root(args.index):
        from .scale import commands

        if args.ray is not None:
            embedder = commands.ray_embedder(args, commands.shard_folders(args.index), sync=True)
        if _is_shard_root(args.index):
            if args.sentence_vectors is not None:
                raise QAError("--sentence-vectors is not available for shards yet; sync without it")
            report = commands.sync_root(args, embedder)
            print(to_json(report.to_dict()) if args.json else f"{args.index}/: {_clean(report.summary())}")
            return 0
    return _report(QA.sync(args.paths, args.index, args.model, skip_bad=args.skip_bad, dense=args.dense,
                           progress=sys.stderr.isatty(), embedder=embedder, sentence_vectors=args.sentence_vectors), args)


def _is_shard_root(index: str) -> bool:
    return (Path(index) / "shards.json").is_file()


def _serve(args) -> int:
    from .scale.commands import serve

    return serve(args)


def _add(args) -> int:
    from .api import QA

    return _report(QA.add(args.files, args.index, skip_bad=args.skip_bad, progress=sys.stderr.isatty()), args)


def _remove(args) -> int:
    from .api import QA

    return _report(QA.remove(args.doc_ids, args.index), args)


def _report(report, args) -> int:
    print(to_json(report.to_dict()) if args.json else f"{args.index}/: {_clean(report.summary())}")
    return 0


def _ask(args) -> int:
    from .api import QA, check_question
    from .news import as_day, make_filters

    questions = _read_questions(args.question)
    if len(questions) == 1:
        check_question(questions[0])  # before the slow part
    if args.k < 1:
        raise QAError(f"-k must be at least 1, got {args.k}")
    try:
        filters = make_filters(args.since, args.until, args.publisher)
        now = as_day(args.now)
    except ValueError as exc:
        raise QAError(f"{exc} (--since, --until, --now)") from None
    if args.server:
        return _ask_server(args, questions, filters, now)
    generator = _generator(args)
    if _is_shard_root(args.index):  # a sharded index, searched in this process
        from .embedding import load_embedder
        from .scale.router import local_router
        from .scale.shards import Layout

        qa = local_router(args.index, load_embedder(args.model or Layout.load(args.index).model.get("name")))
    elif Path(DEFAULT_CORPUS).is_dir():
        # An index built from another corpus is served as it is: only a missing one is built.
        qa = QA.open_or_build([DEFAULT_CORPUS], args.index, args.model, follow=False, progress=sys.stderr.isatty(),
                              on_build=lambda reason: print(f"no index in {args.index}/ yet; building it from "
                                                            f"{DEFAULT_CORPUS}/ first", file=sys.stderr))
    else:
        qa = QA.load(args.index, model=args.model)

    def ask(question: str, asked: list[str]):
        answer = qa.ask(question, k=args.k, history=asked, since=filters.since, until=filters.until,
                        publishers=filters.publishers, now=now, read_time=not args.no_time_filter, recency=args.latest)
        if generator is not None:
            from .generate import generate_answer

            answer = generate_answer(answer, generator, qa.embedder)
        return answer, answer.to_dict()

    return _answer_each(args, questions, ask)


def _ask_server(args, questions: list[str], filters, now) -> int:
    """`qa ask --server URL`: the questions answered by a `qa serve` endpoint, printed as locally
    (`--json`: the server's JSON as it came)."""
    from .scale.client import answer_from_dict
    from .scale.client import ask as ask_server

    if args.llm_url or args.llm_model:
        raise QAError("--llm-url is not available with --server (the server answers verbatim)")

    def ask(question: str, asked: list[str]):
        data = ask_server(args.server, question, k=args.k, history=asked, since=filters.since, until=filters.until,
                          publishers=filters.publishers, now=now, read_time=not args.no_time_filter,
                          recency=args.latest)
        return answer_from_dict(data), data

    return _answer_each(args, questions, ask)


def _answer_each(args, questions: list[str], ask) -> int:
    """Answer and print each question (`ask(question, earlier questions)` -> (Answer, its JSON));
    a bad one in a batch is reported in its place and the others are still answered."""
    from .scale.client import partial_note

    failed, asked = 0, []
    for n, question in enumerate(questions, start=1):
        try:
            answer, data = ask(question, asked if args.chat else [])
        except QuestionError as exc:
            if len(questions) == 1:
                raise
            failed += _bad_question(n, question, exc, args)
            continue
        asked.append(question)
        if args.json:
            print(to_json(data))
            continue
        note = partial_note(answer.partial, answer.language)  # a sharded index that was partly searched
        text = (_clean(note) + "\n" if note else "") + format_answer(answer)
        print(text if len(questions) == 1 else f"Q{n}: {_clean(question)}\n{text}\n")
    return 1 if failed else 0


def _bad_question(n: int, question: str, exc: QuestionError, args) -> int:
    """One bad line of a batch, reported in its place (the others are still answered); returns 1."""
    print(f"error: question {n}: {_inert(str(exc))}", file=sys.stderr)
    if args.json:
        print(to_json({"question": question, "error": str(exc)}))
    return 1


def _generator(args):
    """The language model for written answers, or None (the default: verbatim answers only)."""
    if not (args.llm_url or os.environ.get("NIEUWS_QA_LLM_URL")):
        return None
    from .generate import load_generator

    return load_generator(args.llm_url, args.llm_model)


def _read_questions(args: list[str]) -> list[str]:
    """The questions as given, with "-" replaced by the non-blank lines of standard input."""
    questions = []
    for arg in args:
        if arg == "-":
            questions += [line.rstrip("\r\n") for line in sys.stdin if line.strip()]
        else:
            questions.append(arg)
    if not questions:
        raise QuestionError("no questions on standard input; give one question per line")
    return questions


def _info(args) -> int:
    from .api import describe_index

    info = describe_index(args.index)
    if args.json:
        print(to_json(info, indent=2))
    else:
        print(f"index      {info['index']}\nformat     {info['format_version']}\ncreated    {info['created']}\n"
              f"model      {info['model']['name']} ({info['model']['dim']}-d)\n"
              f"documents  {info['documents']}\nchunks     {info['chunks']}\n"
              f"dense      {info['dense']['kind']} {_params(info['dense']['params'])}".rstrip())
        if info.get("sentences"):
            print(f"sentences  {info['sentences']['count']} vectors kept (highlights without embedding)")
        derived = info.get("derived") or {}
        if derived.get("by"):
            print(f"made by    {derived['by']}" + (f" from {derived['from']}" if derived.get("from") else "")
                  + "".join(f"; {k} " + ", ".join(f"{n} {v}" for v, n in derived[k].items())
                            for k in ("documents", "chunks") if k in derived))
        news = info.get("news")
        if news is None:
            print("news       not indexed (built before date filters): run `qa sync PATH`")
        else:
            print(f"dates      {news['oldest'] or '-'} .. {news['newest'] or '-'}, {news['publishers']} publishers, "
                  f"{news['wire_clusters']} wire stories with {news['wire_copies']} copies")
            if news["undated"]:
                print(f"undated    {news['undated']} articles without a readable date (left out of date filters): "
                      + _clean(", ".join(news["undated_examples"])) + (" …" if news["undated"] > len(news["undated_examples"]) else ""))
    return 0


def _params(params: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())


def _eval(args) -> int:
    from .eval.cli import add_arguments, run

    parser = argparse.ArgumentParser(prog="qa eval", description="Evaluate retrieval and answers on question sets.")
    add_arguments(parser)
    return run(parser.parse_args(args.rest))


def format_answer(answer) -> str:
    """Readable text for people; corpus text is printed as is, with control characters removed."""
    lines = []
    if answer.context:
        lines.append(("(using the previous question: " if answer.language == "en" else "(met de vorige vraag: ")
                     + _clean(answer.context[-1]) + ")")
    if answer.filters or answer.recency:
        lines.append(_format_filters(answer))
    if answer.time_dropped:
        lines.append(f"(nothing dated '{_clean(answer.time_dropped)}' answers this; searched the whole archive)"
                     if answer.language == "en" else
                     f"(niets uit '{_clean(answer.time_dropped)}' beantwoordt dit; gezocht in het hele archief)")
    if answer.generated is not None:
        lines.append(_format_generated(answer.generated, answer.language))
    if not answer.answer_found:
        lines.append("No passage in the corpus answers this question. Closest passages:" if answer.language == "en"
                     else "Geen passage in het corpus beantwoordt deze vraag. Dichtstbijzijnde passages:")
    else:
        best = answer.answer_citation
        lines.append(f"[{best.n}] {_clean(best.highlight.text)}")
    for c in answer.citations:
        legs = {"both": "bm25+dense", "bm25": "bm25", "dense": "dense"}.get(c.found_by, c.found_by)
        where = c.source if c.doc_id in c.source else f"{c.source} — {c.doc_id}"
        lines.append(f"\n[{c.n}] {_clean(c.title)} — {_clean(c.date or 'n.d.')} — {_clean(where)} "
                     f"(score {c.score:.4f}, {legs})")
        if c.url:
            lines.append(f"    {_clean(c.url)}")
        h = c.highlight
        lines.append("    " + _clean(c.text[: h.start] + ">>" + h.text + "<<" + c.text[h.end :]))
        if c.duplicates:
            also = ", ".join(f"{d['publisher'] or d['doc_id']} ({d['date'] or 'n.d.'})" for d in c.duplicates)
            lines.append(("    also in: " if answer.language == "en" else "    ook verschenen in: ") + _clean(also))
    return "\n".join(lines)


def _format_filters(answer) -> str:
    f, en = answer.filters, answer.language == "en"
    parts = []
    if f.dated:
        how = (" (from the question; --no-time-filter drops it)" if en else " (uit de vraag; --no-time-filter laat het weg)")
        parts.append(f.label(answer.language) + (how if f.from_question else ""))
    if f.publishers is not None:
        parts.append(", ".join(f.publishers))
    if answer.recency:
        parts.append("newest first" if en else "nieuwste eerst")
    return ("(filtered: " if en else "(gefilterd: ") + _clean("; ".join(parts)) + ")"


def _format_generated(generated, language: str) -> str:
    """The written answer above the verbatim one: its text only when the check verified it."""
    model = _clean(generated.model)
    if generated.verified:
        head = (f"Written answer ({model}, checked against the passages):" if language == "en"
                else f"Geschreven antwoord ({model}, gecontroleerd aan de passages):")
        return f"{head}\n    {_clean(generated.text)}\n"
    head = (f"The written answer ({model}) could not be verified" if language == "en"
            else f"Het geschreven antwoord ({model}) kon niet worden geverifieerd")
    return f"{head}: {_clean('; '.join(generated.reasons))}.\n"


def _clean(text: str) -> str:
    # Corpus text is untrusted: strip terminal control sequences (ESC etc.) before printing.
    return "".join(ch if ch.isprintable() or ch == "\n" else " " for ch in text).replace("\n", "\n    ")


def _inert(text: str) -> str:
    """Text with every non-printable character shown as an escape (\\x1b), for error messages."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def to_json(data, *, indent: int | None = None) -> str:
    """JSON with UTF-8 text as is, but no raw control, bidi or lone surrogate character.

    json.dumps escapes only C0 controls; DEL, C1 (U+009B is a CSI), bidi overrides and lone
    surrogates (from undecodable argv bytes) would reach the terminal or break UTF-8 output.
    Outside strings JSON is ASCII, so escaping every non-printable character is always valid.
    """
    text = json.dumps(data, ensure_ascii=False, indent=indent)
    return "".join(ch if ch.isprintable() or ch == "\n" else _json_escape(ch) for ch in text)


def _json_escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


if __name__ == "__main__":
    sys.exit(main())
