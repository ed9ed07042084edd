"""Sentence splitting and chunking: offsets are exact, Dutch text splits where it should."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.chunking import ABBREVIATIONS, Chunk, ChunkSettings, chunk_text, split_sentences

SEED = Path(__file__).resolve().parents[1] / "seeds" / "000_c246448bc5d103a6.txt"


def seed_text() -> str:
    # Same header handling as qa.corpus, kept local so these tests only exercise chunking.
    raw = SEED.read_text(encoding="utf-8").removeprefix("\ufeff")
    return re.sub(r"^\s*date \S+\s*", "", raw)


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


def check_invariants(text: str, chunks: list[Chunk], doc_id: str = "doc") -> None:
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert c.text == text[c.start : c.end]
        assert c.text and c.text == c.text.strip()
        assert c.chunk_id == f"{doc_id}#{c.ordinal}" and c.doc_id == doc_id
    for prev, cur in zip(chunks, chunks[1:]):
        assert cur.start > prev.start and cur.end > prev.end  # always moves forward
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


def check_spans(text: str) -> None:
    spans = split_sentences(text)
    for (s, e), nxt in zip(spans, spans[1:] + [(len(text), len(text))]):
        assert 0 <= s < e <= nxt[0]
        assert text[s:e] == text[s:e].strip()
    covered = {i for s, e in spans for i in range(s, e)}
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


# --- splitting -------------------------------------------------------------------------------


@pytest.mark.parametrize("abbreviation", [
    "o.a.", "bijv.", "dhr.", "mr.", "mevr.", "prof.", "dr.", "d.w.z.", "m.a.w.", "i.p.v.",
    "z.g.a.n.", "e.d.", "enz.", "etc.", "ca.", "nr.", "blz.", "jl.", "a.s.", "vs.", "St.",
    "Dhr.", "BIJV.", "Prof.",
])
def test_abbreviations_do_not_end_a_sentence(abbreviation: str) -> None:
    text = f"Hij noemde {abbreviation} Jansen en 12 anderen. Daarna ging hij weg."
    assert sentences(text) == [f"Hij noemde {abbreviation} Jansen en 12 anderen.", "Daarna ging hij weg."]


def test_abbreviation_list_covers_the_spec() -> None:
    for abbreviation in ["o.a.", "bijv.", "dhr.", "mevr.", "z.g.a.n.", "st.", "vs.", "a.s."]:
        assert abbreviation in ABBREVIATIONS


@pytest.mark.parametrize("text, expected", [
    ("Er kwamen 1.127 mensen. Dat is veel.", ["Er kwamen 1.127 mensen.", "Dat is veel."]),
    ("De groei was 2,5 procent. Meer dan 3.5 verwacht.", ["De groei was 2,5 procent.", "Meer dan 3.5 verwacht."]),
    ("Premier J.P. Balkenende sprak. Hij was kort.", ["Premier J.P. Balkenende sprak.", "Hij was kort."]),
    ("Volgens W. Kok was het zo. Anderen twijfelden.", ["Volgens W. Kok was het zo.", "Anderen twijfelden."]),
    ("Hij zei: „Dit is het einde.” De zaal zweeg.", ["Hij zei: „Dit is het einde.”", "De zaal zweeg."]),
    ("Hij zei: “Klaar.” Toen ging hij.", ["Hij zei: “Klaar.”", "Toen ging hij."]),
    ("Zij zei ‚nee.’ Daarna niets.", ["Zij zei ‚nee.’", "Daarna niets."]),
    ("Een leider die „moeilijke beslissingen” moet nemen. Zo.", ["Een leider die „moeilijke beslissingen” moet nemen.", "Zo."]),
    ("Komt hij? Ja! Natuurlijk.", ["Komt hij?", "Ja!", "Natuurlijk."]),
    ("Wacht even… Daar is hij.", ["Wacht even…", "Daar is hij."]),
    ("Het gebied is sinds 1 oktober. Ook in het oosten.", ["Het gebied is sinds 1 oktober.", "Ook in het oosten."]),
    ("Het was in 2022. 400 mensen kwamen.", ["Het was in 2022.", "400 mensen kwamen."]),
    ("Het einde. „Nieuw” begin.", ["Het einde.", "„Nieuw” begin."]),
    ("Geen split. daarna klein.", ["Geen split. daarna klein."]),
    ("Regel een\nregel twee", ["Regel een", "regel twee"]),
    ("Alinea een.\n\nAlinea twee.\r\nDrie", ["Alinea een.", "Alinea twee.", "Drie"]),
    ("  Spaties rondom.  ", ["Spaties rondom."]),
    ("(Zie ook bijv. Jansen.) Daarna.", ["(Zie ook bijv. Jansen.)", "Daarna."]),
])
def test_dutch_splitting(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected
    check_spans(text)


@pytest.mark.parametrize("text", ["", " ", "\n\n", "\t \r\n"])
def test_empty_text(text: str) -> None:
    assert split_sentences(text) == []
    assert chunk_text("doc", text) == []


def test_seed_sentences() -> None:
    text = seed_text()
    found = sentences(text)
    assert found[0].endswith("de Verenigde Staten.”")
    assert found[1].startswith("De Wit-Russische president")
    assert "„moeilijke beslissingen” moet nemen" in found[1]
    assert "Oorlog" in found
    assert any(s.endswith("sinds 1 oktober weer in handen is van het Oekraïense leger.") for s in found)
    check_spans(text)


# --- chunking --------------------------------------------------------------------------------


@pytest.mark.parametrize("max_words, overlap", [(10, 0), (10, 1), (30, 2), (60, 1), (120, 1), (500, 4)])
def test_seed_offsets(max_words: int, overlap: int) -> None:
    text = seed_text()
    chunks = chunk_text("seed", text, max_words=max_words, overlap=overlap)
    check_invariants(text, chunks, "seed")


@pytest.mark.parametrize("text", [
    "Eén zin.",
    "Kop\n\nTekst volgt hier. En nog een zin.\n\nTweede alinea met tekst.",
    "A. B. C. D. E.",
    "zonder hoofdletters. nergens. ooit.\n" * 30,
    ("Dit is een zin met een paar woorden erin. " * 40).strip(),
    "Regel\r\nRegel\rRegel\u2028Regel\u2029Einde.",
])
def test_synthetic_offsets(text: str) -> None:
    for overlap in range(5):
        check_invariants(text, chunk_text("doc", text, max_words=10, overlap=overlap))


def test_heading_attaches_to_following_text() -> None:
    text = seed_text()
    for max_words in (10, 20, 60, 120):
        chunks = chunk_text("seed", text, max_words=max_words)
        assert all(c.text.strip() != "Oorlog" for c in chunks)
        with_heading = [c for c in chunks if "Oorlog\n" in c.text]
        assert len(with_heading) == 1
        assert with_heading[0].text.startswith("Oorlog\n\nCadeautjes vanuit Kiev")


def test_heading_chain_and_trailing_heading() -> None:
    text = "Eerste alinea met een zin.\n\nDeel twee\n\nOorlog\n\nDe tekst van het deel.\n\nSlot"
    chunks = chunk_text("doc", text, max_words=10, overlap=0)
    assert [c.text for c in chunks] == [
        "Eerste alinea met een zin.",
        "Deel twee\n\nOorlog\n\nDe tekst van het deel.\n\nSlot",
    ]


def test_packs_up_to_max_words() -> None:
    text = " ".join(f"Zin {i} heeft vijf woorden." for i in range(20))  # 5 words each
    chunks = chunk_text("doc", text, max_words=20, overlap=0)
    assert [len(c.text.split()) for c in chunks] == [20] * 5
    check_invariants(text, chunks)


def test_overlap_repeats_last_sentences() -> None:
    text = " ".join(f"Zin {i} heeft vijf woorden." for i in range(20))
    for overlap in (1, 2):
        chunks = chunk_text("doc", text, max_words=20, overlap=overlap)
        for prev, cur in zip(chunks, chunks[1:]):
            assert sentences(prev.text)[-overlap:] == sentences(cur.text)[:overlap]
        check_invariants(text, chunks)


def test_overlap_never_loops_or_repeats_a_chunk() -> None:
    # Each sentence nearly fills the budget, so an overlapping sentence cannot fit.
    long = " ".join(["woord"] * 9)
    text = " ".join(f"{long} {i}.".capitalize() for i in range(6))
    chunks = chunk_text("doc", text, max_words=10, overlap=4)
    assert len(chunks) == 6
    assert len({c.text for c in chunks}) == 6
    check_invariants(text, chunks)


def test_long_sentence_is_its_own_chunk() -> None:
    long = "Dit " + " ".join(["woord"] * 25) + "."
    text = f"Kort begin. {long} Kort einde."
    chunks = chunk_text("doc", text, max_words=10, overlap=0)
    assert [c.text for c in chunks] == ["Kort begin.", long, "Kort einde."]


def test_very_long_sentence_is_hard_split() -> None:
    text = " ".join(f"w{i}" for i in range(1000)) + "."
    chunks = chunk_text("doc", text, max_words=100, overlap=1)
    assert len(chunks) == 10
    assert all(len(c.text.split()) <= 100 for c in chunks)
    assert " ".join(c.text for c in chunks) == text  # pieces meet at word boundaries
    check_invariants(text, chunks)


@pytest.mark.parametrize("kwargs, parameter", [
    ({"max_words": 9}, "max_words"),
    ({"max_words": 0}, "max_words"),
    ({"max_words": 12.5}, "max_words"),
    ({"overlap": -1}, "overlap"),
    ({"overlap": 5}, "overlap"),
    ({"overlap": True}, "overlap"),
])
def test_settings_validation(kwargs: dict, parameter: str) -> None:
    with pytest.raises(ValueError, match=parameter):
        chunk_text("doc", "Tekst.", **kwargs)
    with pytest.raises(ValueError, match=parameter):
        ChunkSettings(**kwargs)


def test_settings_to_dict() -> None:
    assert ChunkSettings().to_dict() == {"max_words": 120, "overlap": 1}
    assert ChunkSettings(max_words=50, overlap=0).to_dict() == {"max_words": 50, "overlap": 0}


# --- properties ------------------------------------------------------------------------------

_ODD = st.sampled_from(list(".!?…„“”‚‘’\"'()[] \n\r\t\u00a0\u200b\u200e\u200f\u202e\u2028\u2029\x00\x1c\x85\ufeff🙂👨‍👩‍👧"))
_WORDS = st.sampled_from(["Zin", "dhr.", "J.P.", "1.127", "Oorlog", "a", "B.", "\n\n", " ", "etc."])
_TEXT = st.one_of(
    st.text(),
    st.text(alphabet=st.one_of(_ODD, st.characters())),
    st.lists(st.one_of(_WORDS, _ODD), max_size=200).map("".join),
)


@settings(max_examples=200, deadline=None)
@given(text=_TEXT, max_words=st.integers(10, 40), overlap=st.integers(0, 4))
def test_property_offsets_hold_for_any_text(text: str, max_words: int, overlap: int) -> None:
    check_spans(text)
    check_invariants(text, chunk_text("doc", text, max_words=max_words, overlap=overlap))
