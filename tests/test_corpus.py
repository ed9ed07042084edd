"""Reading corpora: seed files, Markdown, nested folders, JSONL, and every way a file can be bad."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from qa import corpus
from qa.corpus import Article, CorpusWarning, iter_corpus_files, read_corpus
from qa.errors import CorpusError

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
SEED_NAME = "000_c246448bc5d103a6.txt"


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def jsonl(path: Path, *records: dict | str) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
    return write(path, "\n".join(lines) + "\n")


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    folder = tmp_path / "seeds"
    shutil.copytree(SEEDS, folder)
    return folder


# --- good input ------------------------------------------------------------------------------


def test_seed_folder(seeds: Path) -> None:
    [article] = read_corpus([seeds])
    raw = (seeds / SEED_NAME).read_text(encoding="utf-8")
    assert article.doc_id == SEED_NAME
    assert article.date == "2022-10"
    assert article.source == str(seeds / SEED_NAME)
    assert not article.text.startswith(("date", " "))
    assert "date 2022-10" not in article.text
    assert raw.endswith(article.text)  # only the header was removed
    assert article.title.startswith("De Noord-Koreaanse leider Kim Jong-un")
    assert article.title.endswith("de Verenigde Staten.”")
    assert (article.url, article.publisher, article.lang) == (None, None, None)


@pytest.mark.parametrize("content, date, text", [
    ("date 2022-10 Tekst hier.", "2022-10", "Tekst hier."),
    ("date 2022-10-07 Tekst hier.", "2022-10-07", "Tekst hier."),
    ("\ufeff  date 2022-10-07\n\nTekst hier.", "2022-10-07", "Tekst hier."),
    ("Geen kop. Wel tekst.", None, "Geen kop. Wel tekst."),
    ("date 2022-13 Geen geldige maand.", None, "date 2022-13 Geen geldige maand."),
    ("date 2022-10 Regel een.\r\nRegel twee.\r\n", "2022-10", "Regel een.\nRegel twee.\n"),
])
def test_date_header(tmp_path: Path, content: str, date: str | None, text: str) -> None:
    [article] = read_corpus([write(tmp_path / "a.txt", content)])
    assert (article.date, article.text) == (date, text)


def test_title_is_shorter_of_first_sentence_and_line(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", "Oorlog\n\nDe tekst begint hier. Tweede zin.")
    write(tmp_path / "b.txt", "Eerste zin hier. Tweede zin.\nNog een regel.")
    write(tmp_path / "c.txt", " ".join(["woord"] * 100) + ".")
    a, b, c = read_corpus([tmp_path])
    assert (a.title, b.title) == ("Oorlog", "Eerste zin hier.")
    assert len(c.title) <= 201 and c.title.endswith("woord…")


def test_markdown_and_nested_folders(tmp_path: Path) -> None:
    write(tmp_path / "b.txt", "Tekst b.")
    write(tmp_path / "sub" / "x.md", "# Kop\n\nTekst x.")
    write(tmp_path / "sub" / "deeper" / "y.txt", "Tekst y.")
    write(tmp_path / "a.md", "Tekst a.")
    write(tmp_path / "notes.csv", "ignored")
    write(tmp_path / ".hidden.txt", "ignored")
    write(tmp_path / ".git" / "z.txt", "ignored")
    articles = read_corpus([tmp_path])
    assert [a.doc_id for a in articles] == ["a.md", "b.txt", "sub/deeper/y.txt", "sub/x.md"]
    assert iter_corpus_files([tmp_path]) == [tmp_path / "a.md", tmp_path / "b.txt",
                                             tmp_path / "sub/deeper/y.txt", tmp_path / "sub/x.md"]
    assert articles[3].text == "# Kop\n\nTekst x."


def test_directly_named_file_and_single_path(tmp_path: Path) -> None:
    path = write(tmp_path / "sub" / "x.txt", "Tekst.")
    assert read_corpus([path])[0].doc_id == "x.txt"
    assert read_corpus(str(tmp_path))[0].doc_id == "sub/x.txt"  # a lone string is one path
    # The same file reached twice is read once.
    assert len(read_corpus([tmp_path, path])) == 1


def test_jsonl(tmp_path: Path) -> None:
    path = jsonl(
        tmp_path / "news.jsonl",
        {"id": "n1", "text": "Eerste bericht. Met twee zinnen.", "title": "Titel", "date": "2023-01-05",
         "source": "NOS", "url": "https://example.org/1", "lang": "nl"},
        "",
        {"id": 2, "text": "Tweede bericht\nzonder titel.", "date": "2023-02-01T10:00:00Z"},
    )
    write(tmp_path / "z.txt", "date 2022-10 Los bestand.")
    a, b, c = read_corpus([tmp_path])
    assert a == Article("n1", "Eerste bericht. Met twee zinnen.", "Titel", "2023-01-05", str(path),
                        url="https://example.org/1", publisher="NOS", lang="nl")
    assert (b.doc_id, b.title, b.date, b.publisher) == ("2", "Tweede bericht", "2023-02-01", None)
    assert c.doc_id == "z.txt"


# --- bad input -------------------------------------------------------------------------------

BAD_FILES = {
    "not_utf8": (b"Tekst met \xff byte.", "not valid UTF-8 (byte 0xff at offset 10)"),
    "empty": (b"", "is empty"),
    "whitespace": (b" \n\t\n", "is empty"),
    "header_only": (b"date 2022-10   \n", "no text after the date header"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_file_raises_naming_the_file(tmp_path: Path, name: str) -> None:
    content, problem = BAD_FILES[name]
    write(tmp_path / "good.txt", "Goede tekst.")
    bad = write(tmp_path / f"{name}.txt", content)
    with pytest.raises(CorpusError) as info:
        read_corpus([tmp_path])
    assert str(bad) in str(info.value) and problem in str(info.value)


@pytest.mark.parametrize("name", BAD_FILES)
def test_skip_bad_file_warns_and_goes_on(tmp_path: Path, name: str) -> None:
    write(tmp_path / "good.txt", "Goede tekst.")
    bad = write(tmp_path / f"{name}.txt", BAD_FILES[name][0])
    with pytest.warns(CorpusWarning, match=str(bad)):
        articles = read_corpus([tmp_path], skip_bad=True)
    assert [a.doc_id for a in articles] == ["good.txt"]


BAD_LINES = {
    "bad_json": ('{"id": "x", "text": ', "not valid JSON"),
    "not_object": ('["x", "tekst"]', "JSON object"),
    "missing_id": ('{"text": "Tekst."}', "'id'"),
    "missing_text": ('{"id": "x"}', "'text'"),
    "empty_text": ('{"id": "x", "text": "  "}', "'text'"),
    "bad_field": ('{"id": "x", "text": "Tekst.", "url": 5}', "'url'"),
}


@pytest.mark.parametrize("name", BAD_LINES)
def test_bad_jsonl_line(tmp_path: Path, name: str) -> None:
    line, problem = BAD_LINES[name]
    path = jsonl(tmp_path / "news.jsonl", {"id": "ok", "text": "Goed."}, line, {"id": "ok2", "text": "Ook goed."})
    with pytest.raises(CorpusError) as info:
        read_corpus([path])
    assert f"{path}:2" in str(info.value) and problem in str(info.value)
    with pytest.warns(CorpusWarning, match=f"{path}:2"):
        articles = read_corpus([path], skip_bad=True)
    assert [a.doc_id for a in articles] == ["ok", "ok2"]


def test_duplicate_ids(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "a.jsonl", {"id": "x", "text": "Een."}, {"id": "x", "text": "Twee."})
    with pytest.raises(CorpusError, match="duplicate id 'x'") as info:
        read_corpus([path])
    assert str(path) in str(info.value)
    with pytest.warns(CorpusWarning, match="duplicate id"):
        assert [a.text for a in read_corpus([path], skip_bad=True)] == ["Een."]


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    write(tmp_path / "one" / "x.txt", "Een.")
    write(tmp_path / "two" / "x.txt", "Twee.")
    with pytest.raises(CorpusError, match="duplicate id 'x.txt'"):
        read_corpus([tmp_path / "one", tmp_path / "two"])


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    for skip_bad in (False, True):
        with pytest.raises(CorpusError, match="no such file or folder") as info:
            read_corpus([missing], skip_bad=skip_bad)
        assert str(missing) in str(info.value)


def test_named_file_with_other_extension(tmp_path: Path) -> None:
    path = write(tmp_path / "a.pdf", "x")
    with pytest.raises(CorpusError, match="unsupported file type '.pdf'") as info:
        read_corpus([path])
    assert str(path) in str(info.value)


def test_no_files_found(tmp_path: Path) -> None:
    write(tmp_path / "a.csv", "x")
    with pytest.raises(CorpusError, match="no .txt, .md or .jsonl files found under"):
        read_corpus([tmp_path])
    with pytest.raises(CorpusError, match="no .txt, .md or .jsonl files found under"):
        read_corpus([])


def test_all_files_skipped(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", b"")
    with pytest.warns(CorpusWarning), pytest.raises(CorpusError, match="no readable article"):
        read_corpus([tmp_path], skip_bad=True)


def test_too_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpus, "MAX_FILE_BYTES", 10)
    path = write(tmp_path / "big.txt", "Deze tekst is langer dan tien bytes.")
    with pytest.raises(CorpusError, match="byte limit") as info:
        read_corpus([path])
    assert str(path) in str(info.value)


def test_symlink_outside_is_skipped(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside" / "secret.txt", "Geheim.")
    folder = tmp_path / "corpus"
    write(folder / "a.txt", "Gewoon.")
    (folder / "link.txt").symlink_to(outside)
    (folder / "linkdir").symlink_to(outside.parent, target_is_directory=True)
    (folder / "inside.txt").symlink_to(folder / "a.txt")
    with pytest.warns(CorpusWarning, match="outside") as record:
        articles = read_corpus([folder])
    assert {str(folder / "link.txt"), str(folder / "linkdir")} <= {
        str(w.message).split(":")[0] for w in record}
    # A link to a file inside the corpus is the same file, which is read once.
    assert [a.doc_id for a in articles] == ["a.txt"]
    assert all("Geheim" not in a.text for a in articles)


def test_unreadable_dates_are_kept_as_given_and_readable_ones_normalised(tmp_path):
    # Not an error: the article is indexed, and build, sync and info name it (tests/test_news.py).
    path = tmp_path / "a.jsonl"
    lines = [{"id": "a", "text": "Tekst.", "date": "gisteren"}, {"id": "b", "text": "Tekst.", "date": 1665100800},
             {"doc_id": "c", "text": "Tekst.", "date": "2022-10-07T01:30:00+02:00", "publisher": "Krant"},
             {"id": "d", "text": "Tekst.", "date": "2022-10", "source": "Blad"}]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    articles = {a.doc_id: a for a in read_corpus([path])}
    assert [articles[d].date for d in "abcd"] == ["gisteren", "2022-10-07", "2022-10-07", "2022-10"]
    assert (articles["c"].publisher, articles["d"].publisher) == ("Krant", "Blad")
