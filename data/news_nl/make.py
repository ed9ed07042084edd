"""Generate data/news_nl: a SYNTHETIC, dated, multi-publisher Dutch news corpus with wire copies.

Run from the repository root (stdlib + numpy, fixed seed, same output every run):

    .venv/bin/python data/news_nl/make.py

Reads data/ntrex_nl/passages.jsonl (123 real articles, CC BY-SA 4.0), the seed article in seeds/
and the hand-written retellings in data/news_nl/retellings.jsonl. Writes articles.jsonl,
pairs.jsonl and questions.jsonl next to this file. Dates, publishers, URLs, wire copies and
retellings are invented; see SOURCE.md.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import itertools
import json
import re
import unicodedata
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SEED = 20221007
YEAR_START = dt.date(2022, 1, 1)

PAPERS = {"De Dagkrant": "dagkrant", "Noorderbode": "noorderbode", "Het Avondblad": "avondblad",
          "Stadsnieuws": "stadsnieuws", "Rijnmond Courant": "rijnmondcourant"}
AGENCY = "NPA"
SLUGS = {**PAPERS, AGENCY: "npa"}

# The agency ("NPA") originals: two new headlines for their copies and the dateline city.
WIRE = {
    "bbc.381790": ("Welshe parlementariërs vrezen spot om nieuwe titel MWP", "Naamswijziging Welsh Assembly zorgt voor onrust", "CARDIFF"),
    "rt.com.91337": ("Macedonië stemt over nieuwe naam Noord-Macedonië", "Referendum moet naamruzie met Griekenland beslechten", "SKOPJE"),
    "nytimes.184853": ("Kerken en cafés verdwijnen uit Harlem", "Stille klokken in Harlem: kerken onder druk", "NEW YORK"),
    "guardian.221754": ("Sainsbury's richt pijlen op schoonheidsmarkt", "Sainsbury's breidt aanbod beautyproducten fors uit", "LONDEN"),
    "dailymail.co.uk.298595": ("Holly Willoughby stapt uit lifestylemerk Truly", "Peter Jones boos na vertrek Willoughby", "LONDEN"),
    "nytimes.184837": ("Hulporganisaties twijfelen of ze Palu kunnen bereiken", "Indonesië terughoudend met buitenlandse hulp na tsunami", "JAKARTA"),
    "dailymail.co.uk.298732": ("Man (32) opgepakt na dood van vrouw in Birkenhead", "Moordonderzoek in Birkenhead na vondst lichaam", "LONDEN"),
    "telegraph.405401": ("Ophef over standbeeld van Cromwell bij parlement", "Cromwell Society: verwijderen beeld is geschiedvervalsing", "LONDEN"),
    "newsweek.51331": ("Boer in China gedood door varken", "Varken doodt boer op markt in Guizhou", "PEKING"),
    "abcnews.306815": ("Restanten van orkaan Rosa brengen noodweer naar zuidwesten VS", "Rosa verzwakt maar brengt zware regen", "WASHINGTON"),
    "cbsnews.248387": ("Verdachte opgepakt voor dood LSU-basketballer Wayde Sims", "Politie Baton Rouge arresteert Dyteon Simpson", "WASHINGTON"),
    "reuters.218888": ("Zes arrestaties bij onrust in Barcelona", "Catalanen herdenken referendum met rivaliserende betogingen", "MADRID"),
    "bbc.381746": ("Menga bezorgt Livingston zege op Rangers", "Nieuwe tegenslag voor Gerrard bij Livingston", "EDINBURGH"),
    "reuters.218863": ("Dodental aardbeving en tsunami Sulawesi loopt op", "Golven van zes meter treffen Palu", "JAKARTA"),
    "bbc.381647": ("Kanye West heet voortaan Ye", "Rapper Kanye West kiest nieuwe naam", "LONDEN"),
    "cnbc.com.6772": ("Kai-Fu Lee: VS moeten AI-budget verdubbelen", "Investeerder waarschuwt VS voor Chinese AI-opmars", "NEW YORK"),
    "reuters.218932": ("Macedoniërs naar de stembus over naamswijziging", "Lage opkomst dreigt bij referendum Macedonië", "SKOPJE"),
    "cnn.304447": ("Trump voert campagne in West Virginia", "Trump: 'Alles staat in november op het spel'", "WASHINGTON"),
    "guardian.221762": ("Bolivia hoopt via rechter op toegang tot de zee", "Boliviaanse droom van een eigen kust", "DEN HAAG"),
    "cnbc.com.6769": ("Noord-Korea: geen ontwapening zonder vertrouwen in VS", "Ri Yong Ho spreekt VN toe over kernwapens", "NEW YORK"),
    "dailymail.co.uk.298692": ("Reuzenhoeden op de catwalk in Parijs", "Valentino en Thom Browne tonen enorme hoeden", "PARIJS"),
    "reuters.218923": ("Europa met 10-6 voor in Ryder Cup", "Fleetwood en Molinari stuwen Europa naar voorsprong", "PARIJS"),
    "dailymail.co.uk.298759": ("Harvard leert studenten het belang van slaap", "Slaapcursus voor studenten van Harvard", "NEW YORK"),
    "dailymail.co.uk.298738": ("Kit Harington kritisch over macho-rolmodellen", "Jon Snow-acteur over toxische mannelijkheid", "LONDEN"),
    "upi.176275": ("Achttien staten steunen rechtszaak tegen asielbeleid", "Verzet tegen strenger Amerikaans asielbeleid groeit", "WASHINGTON"),
    "reuters.218933": ("Amerikaanse ambassadeur: China intimideert met advertenties", "Ophef over Chinese bijlage in krant uit Iowa", "PEKING"),
    "newsweek.51307": ("Tim Berners-Lee begint startup Inrupt", "Uitvinder van het web wil macht techreuzen breken", "NEW YORK"),
    "rt.com.91350": ("Duits fregat opnieuw vertraagd", "Ingebruikname Rheinland-Pfalz uitgesteld", "BERLIJN"),
    "scotsman.133773": ("Onderzoek naar vleermuizen in Schotse Hooglanden", "National Trust volgt vleermuizen bij Inverewe Gardens", "EDINBURGH"),
    "rt.com.91334": ("Ronaldo noemt beschuldigingen 'fake news'", "Advocaten Ronaldo willen Der Spiegel aanklagen", "TURIJN"),
    "bbc.381680": ("Minister Clark: no-deal Brexit bedreigt auto-industrie", "Toyota dreigt productie in Burnaston stil te leggen", "LONDEN"),
    "dailymail.co.uk.298622": ("Buitenlandse huizenkopers in VK gaan meer betalen", "Extra heffing op huizen moet daklozen helpen", "LONDEN"),
    "dailymail.co.uk.298644": ("Britse pubs profiteren van hittegolf", "Onderzoek: zaterdag half zes ideaal moment voor een biertje", "LONDEN"),
    "dailymail.co.uk.298602": ("Veel kinderen hebben geheim account op sociale media", "Scholieren verbergen 'nep-Insta' voor ouders", "LONDEN"),
    "nytimes.184862": ("Migrantenkinderen naar tentenkamp in Texas", "Aantal vastgehouden migrantenkinderen op recordhoogte", "WASHINGTON"),
    "abcnews.306774": ("Aanklagers eisen doodstraf voor aanslagpleger New York", "Doodstraf geëist tegen Sajpov", "NEW YORK"),
    "newsweek.51340": ("Luchtverkeersleider in Palu sterft als held", "Verkeersleider bleef op post tot vliegtuig veilig opsteeg", "JAKARTA"),
    "cbsnews.248411": ("Passagier vermist na crash in lagune Micronesië", "Air Niugini: toch één inzittende vermist", "SYDNEY"),
    "bbc.381749": ("Moeders plakken hoopvolle berichten op brug", "Nabestaanden willen zelfdoding voorkomen met briefjes op brug", "CARDIFF"),
    "bbc.381736": ("Minder Noord-Koreanen vluchten naar het zuiden", "Aantal overlopers gedaald onder Kim Jong-un", "SEOUL"),
}

# ntrex articles that report the same event independently: dated close together, and gold
# "same_event" pairs (they must never be taken for wire copies of each other).
EVENTS = [
    ["nytimes.184837", "euronews-en.153835", "reuters.218863", "nytimes.184860", "telegraph.405422",
     "reuters.218865", "euronews-en.153797", "newsweek.51340"],  # earthquake and tsunami on Sulawesi
    ["independent.226301", "reuters.218923", "reuters.218914", "scotsman.133758", "euronews-en.153826"],  # Ryder Cup
    ["cbsnews.248384", "cnn.304489", "cbsnews.248471", "newsweek.51328", "telegraph.405413", "cbsnews.248394"],  # Kavanaugh
    ["rt.com.91337", "reuters.218932"],  # Macedonian referendum
    ["bbc.381746", "scotsman.133791"],  # Livingston 1-0 Rangers
    ["cbsnews.248387", "reuters.218909"],  # arrest after Wayde Sims was shot
    ["newsweek.51300", "abcnews.306755"],  # Elizabeth Warren considers running
    ["cnn.304478", "newsweek.51339"],  # Track Palin
    ["cnn.304447", "newsweek.51310", "cnbc.com.6790"],  # Trump's rally in West Virginia
    ["abcnews.306815", "newsweek.51338"],  # hurricane Rosa
    ["cnbc.com.6769", "reuters.218861"],  # Ri Yong Ho at the UN
    ["bbc.381647", "newsweek.51329"],  # Kanye West
    ["thelocal.65969", "euronews-en.153799"],  # Syria at the UN
]
# Same-event pairs that really are one event told twice (the groups above are wider: same story).
NATURAL_PAIRS = [("rt.com.91337", "reuters.218932"), ("bbc.381746", "scotsman.133791"),
                 ("cbsnews.248387", "reuters.218909"), ("newsweek.51300", "abcnews.306755"),
                 ("abcnews.306815", "newsweek.51338"), ("cnbc.com.6769", "reuters.218861"),
                 ("cnn.304447", "newsweek.51310")]

SEED_ID = "seed-c246448bc5d103a6"
# Dates fixed by hand so that the time words of the questions below hold for every answer.
PINNED = {
    "bbc.381790": "2022-03-14", "rt.com.91337": "2022-09-24", "bbc.381647": "2022-04-08",
    "rt.com.91350": "2022-02-10", "newsweek.51307": "2022-05-20", "bbc.381746": "2022-11-12",
    "cnn.304404": "2022-12-09", "upi.176266": "2022-06-18", "abcnews.306774": "2022-08-16",
    "guardian.221754": "2022-04-21", "bbc.381735": "2022-07-17",
    # Other articles that mention Wales stay out of March 2022 ("What happened in Wales in March 2022?").
    "bbc.381749": "2022-11-03", "newsweek.51331": "2022-01-19",
}

# (question, lang, source articles, date range: True = derived from the answers, a pair = the
# period the question's own time words name, None = no range; the answer's key words, which every
# answering doc must contain: the sentences holding them are never edited in a wire copy)
QUESTIONS = [
    ("What happened in Wales in March 2022?", "en", ["bbc.381790"], ("2022-03-01", "2022-03-31"), "MWP"),
    ("Waarover stemden de Macedoniërs in september 2022?", "nl", ["rt.com.91337", "reuters.218932"], ("2022-09-01", "2022-09-30"), "Noord-Macedonië"),
    ("Welke nieuwe naam koos Kanye West in april 2022?", "nl", ["bbc.381647"], ("2022-04-01", "2022-04-30"), "naam in Ye"),
    ("Wat gebeurde er in het eerste kwartaal van 2022 met het Duitse fregat Rheinland-Pfalz?", "nl", ["rt.com.91350"], ("2022-01-01", "2022-03-31"), "Rheinland-Pfalz"),
    ("Which startup did Tim Berners-Lee launch in the first half of 2022?", "en", ["newsweek.51307"], ("2022-01-01", "2022-06-30"), "Inrupt"),
    ("Wie scoorde in november 2022 het winnende doelpunt voor Livingston tegen Rangers?", "nl", ["bbc.381746", "scotsman.133791"], ("2022-11-01", "2022-11-30"), "Menga"),
    ("Hoeveel geld werd er in december 2022 gestolen bij een geldautomaat in Newport on the Levee?", "nl", ["cnn.304404"], ("2022-12-01", "2022-12-31"), "26.750"),
    ("Wat gebeurde er tussen mei en juli 2022 bij Beacon's Beach in Encinitas?", "nl", ["upi.176266"], ("2022-05-01", "2022-07-31"), "Encinitas"),
    ("Welke straf eisten aanklagers in augustus 2022 tegen Sajfoello Sajpov?", "nl", ["abcnews.306774"], ("2022-08-01", "2022-08-31"), "doodstraf"),
    ("What did Sainsbury's plan for its beauty departments in the second quarter of 2022?", "en", ["guardian.221754"], ("2022-04-01", "2022-06-30"), "schoonheidsafdelingen"),
    ("Wat gebeurde er in de tweede helft van 2022 in de gevangenis Long Lartin?", "nl", ["bbc.381735"], ("2022-07-01", "2022-12-31"), "Long Lartin"),
    ("Hoeveel vierkante kilometer heroverde het Oekraïense leger volgens Zelenski in oktober 2022?", "nl", [SEED_ID], ("2022-10-01", "2022-10-31"), "vierkante kilometer"),
    ("Hoeveel is de Britse schoonheidsmarkt waard volgens Sainsbury's?", "nl", ["guardian.221754"], True, "2,8 miljard"),
    ("Uit welke deal van 11 miljoen pond trok Holly Willoughby zich terug?", "nl", ["dailymail.co.uk.298595"], None, "11 miljoen pond"),
    ("Waar werd in Birkenhead het lichaam van een 44-jarige vrouw gevonden?", "nl", ["dailymail.co.uk.298732"], True, "Grayson Mews"),
    ("Where was a Chinese farmer killed by a pig?", "en", ["newsweek.51331"], True, "Liupanshui"),
    ("Wie is gearresteerd voor de dood van LSU-basketballer Wayde Sims?", "nl", ["cbsnews.248387", "reuters.218909"], True, "Simpson"),
    ("Hoeveel mensen werden in Barcelona gearresteerd bij de onrust rond de verjaardag van het Catalaanse referendum?", "nl", ["reuters.218888"], True, "Zes mensen"),
    ("Hoeveel meer moeten de Verenigde Staten volgens Kai-Fu Lee uitgeven aan onderzoek naar kunstmatige intelligentie?", "nl", ["cnbc.com.6772"], True, "verdubbelen"),
    ("Welk motto staat op de Boliviaanse marinebases?", "nl", ["guardian.221762"], None, "De zee is van ons"),
    ("Onder welke voorwaarde wil Noord-Korea volgens Ri Yong Ho zijn kernwapens opgeven?", "nl", ["cnbc.com.6769", "reuters.218861"], True, "vertrouw"),
    ("Welke ontwerpers toonden gigantische hoeden tijdens de Paris Fashion Week?", "nl", ["dailymail.co.uk.298692"], True, "Thom Browne"),
    ("Met welke stand ging Europa de laatste dag van de Ryder Cup in?", "nl", ["reuters.218923", "scotsman.133758"], True, "10-6"),
    ("Wie ontwierp de slaapcursus voor studenten van Harvard?", "nl", ["dailymail.co.uk.298759"], True, "Czeisler"),
    ("Met wie is Kit Harington getrouwd?", "nl", ["dailymail.co.uk.298738"], None, "Rose Leslie"),
    ("How many US states back the legal challenge to the new asylum policy?", "en", ["upi.176275"], True, "Achttien staten"),
    ("In welke krant plaatste China Daily een advertentiebijlage?", "nl", ["reuters.218933"], True, "Des Moines Register"),
    ("Welk tijdschrift willen de advocaten van Ronaldo aanklagen?", "nl", ["rt.com.91334"], None, "Der Spiegel"),
    ("Welke autofabrikant dreigt bij een no-deal Brexit de productie in Burnaston stil te leggen?", "nl", ["bbc.381680"], True, "Toyota"),
    ("Hoeveel moet de hogere belasting voor buitenlandse huizenkopers in het VK per jaar opbrengen?", "nl", ["dailymail.co.uk.298622"], True, "120 miljoen"),
    ("Met hoeveel procent steeg de omzet van Britse pubs en bars in juli?", "nl", ["dailymail.co.uk.298644"], None, "2,7 procent"),
    ("Hoeveel leerlingen werden ondervraagd over geheime accounts op sociale media?", "nl", ["dailymail.co.uk.298602"], True, "20.000 leerlingen"),
    ("Hoe heette de luchtverkeersleider die in Palu op zijn post bleef?", "nl", ["newsweek.51340"], True, "Anthonius Gunawan Agung"),
    ("How many people were on board the Air Niugini plane that crashed into a lagoon in Micronesia?", "en", ["cbsnews.248411"], True, "47"),
    ("Wat plakken Sharon Davis en Kelly Humphreys op een brug in Wales?", "nl", ["bbc.381749"], True, "brug"),
    ("Hoeveel Noord-Koreanen liepen vorig jaar over naar Zuid-Korea?", "nl", ["bbc.381736"], True, "1.127"),
    ("Hoe ver van Punta Eugenia lag orkaan Rosa zondagochtend?", "nl", ["abcnews.306815", "newsweek.51338"], None, "620 km"),
    ("Welke vleermuissoorten worden bij Inverewe Gardens gevolgd?", "nl", ["scotsman.133773"], True, "dwergvleermuis"),
    ("Hoe oud zijn de mannen die in Londonderry werden opgepakt nadat een huis met een auto was geramd?", "nl", ["bbc.381780"], True, "33, 34 en 39"),
    ("Hoe noemen Mexicanen de vulkaan Popocatepetl?", "nl", ["abcnews.306764"], True, "Don Goyo"),
    ("Tegen welke ploeg speelt LeBron James zijn eerste wedstrijd voor de Lakers?", "nl", ["reuters.218911"], True, "Denver Nuggets"),
    ("Met hoeveel procent steeg het aantal hiv- en aidspatiënten in China?", "nl", ["bbc.381669"], True, ("14%", "14 procent")),
    ("When was Hans Geiger born?", "en", ["cbsnews.248484"], True, "1882"),
    ("Hoeveel Syriërs zijn volgens de VN sinds 2011 hun land ontvlucht?", "nl", ["euronews-en.153799"], True, "5,5 miljoen"),
    ("Van welk bedrijf werd Still Game-acteur Ford Kieran directeur?", "nl", ["scotsman.133804"], True, "Adriftmorn"),
    ("Welke belofte deed Lopez Obrador op het Tlatelolco-plein?", "nl", ["abcnews.306758"], None, "Tlatelolco"),
    ("Welk eiwit leert het nieuwe kankervaccin immuuncellen te herkennen?", "nl", ["dailymail.co.uk.298630"], None, "HER2"),
    ("Wat schreef Jeane Freeman aan het EU-personeel van NHS Scotland?", "nl", ["scotsman.133783"], True, "Freeman"),
    ("How many prison officers were hurt in the disturbance at Long Lartin?", "en", ["bbc.381735"], True, ("zes cipiers", "zes bewaarders")),
]

# Everyday synonyms a copy editor swaps in; other changed words become random corpus words.
SYNONYMS = {
    "zei": "verklaarde", "zegt": "stelt", "ook": "eveneens", "maar": "doch", "nu": "inmiddels",
    "ongeveer": "circa", "tijdens": "gedurende", "mensen": "personen", "vorige": "afgelopen",
    "grote": "forse", "groot": "fors", "snel": "vlug", "direct": "meteen", "meteen": "direct",
    "echter": "evenwel", "bovendien": "daarnaast", "daarnaast": "bovendien", "huis": "woning",
    "woning": "huis", "auto": "wagen", "bijna": "nagenoeg", "helemaal": "volledig", "moeilijk": "lastig",
    "ziekenhuis": "hospitaal", "vanwege": "wegens", "wegens": "vanwege", "altijd": "steeds",
    "zeer": "erg", "erg": "zeer", "heel": "zeer", "waarschijnlijk": "vermoedelijk", "mogelijk": "wellicht",
    "belangrijke": "essentiële", "belangrijk": "essentieel", "vrouw": "dame", "kinderen": "kids",
    "stad": "gemeente", "gisteren": "eergisteren", "verklaarde": "zei", "kreeg": "ontving",
}
DECORATIONS = ("dateline", "byline", "credit", None)
_SENTENCE_END = re.compile(r"(?<=[.!?’'\"])\s+(?=[A-Z‘'\"(])")
_TOKEN = re.compile(r"^(\W*)(.*?)(\W*)$")


def load_ntrex() -> dict[str, dict]:
    """The ntrex articles in file order: title and paragraphs (one per passage)."""
    articles: dict[str, dict] = {}
    with open(ROOT / "data/ntrex_nl/passages.jsonl", encoding="utf-8") as handle:
        for line in handle:
            passage = json.loads(line)
            article = articles.setdefault(passage["doc_id"], {"title": passage["title"], "paragraphs": []})
            article["paragraphs"].append(passage["text"].replace("\u200b", ""))
    return {f"ntrex-{key}": value for key, value in articles.items()}


def load_seed() -> dict:
    (path,) = sorted((ROOT / "seeds").glob("*.txt"))
    text = re.sub(r"^\s*date\s+\S+\s+", "", path.read_text(encoding="utf-8"))
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    return {"title": "Kim en Loekasjenko loven Poetin, Oekraïne rukt op bij Cherson", "paragraphs": paragraphs}


def slugify(text: str, words: int = 8) -> str:
    folded = unicodedata.normalize("NFKD", text.casefold()).encode("ascii", "ignore").decode()
    return "-".join(re.findall(r"[a-z0-9]+", folded)[:words])


def new_id(publisher: str, date: dt.date, key: str) -> str:
    return f"{SLUGS[publisher]}-{date:%Y%m%d}-{hashlib.sha1(key.encode()).hexdigest()[:6]}"


def words_of(paragraphs: list[str]) -> list[str]:
    return [word for paragraph in paragraphs for word in paragraph.split()]


def changed_fraction(reference: list[str], a: list[str], b: list[str]) -> float:
    """Share of the reference words that a difflib matching of a and b leaves unmatched."""
    matched = sum(block.size for block in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks())
    return round(min(1.0, max(0.0, 1 - matched / len(reference))), 3)


def edit_words(paragraphs: list[str], target: float, keys: list[str], vocabulary: list[str], rng) -> tuple[list[str], list[str]]:
    """Paragraphs with about ``target`` of their words changed: a sentence swap, substitutions, deletions.

    Names and numbers (capitalised words, words with digits) and the sentences holding a question's
    key words are left alone, as an editor would, so every copy still answers its questions.
    """
    edits, original = [], words_of(paragraphs)
    if rng.random() < 0.4:
        candidates = [i for i, p in enumerate(paragraphs) if len(_SENTENCE_END.split(p)) >= 2]
        if candidates:
            i = candidates[rng.integers(len(candidates))]
            sentences = _SENTENCE_END.split(paragraphs[i])
            j = int(rng.integers(len(sentences) - 1))
            sentences[j], sentences[j + 1] = sentences[j + 1], sentences[j]
            paragraphs = [*paragraphs[:i], " ".join(sentences), *paragraphs[i + 1:]]
            edits.append("reorder")
    budget = round(target * len(original)) - round(changed_fraction(original, original, words_of(paragraphs)) * len(original))
    tokens = []  # per paragraph: [word, untouchable]
    for paragraph in paragraphs:
        tokens.append([])
        for sentence in _SENTENCE_END.split(paragraph):
            keep = any(key.casefold() in sentence.casefold() for key in keys)
            tokens[-1] += [[word, keep or bool(re.search(r"\d|^\W*[A-Z]", word))] for word in sentence.split()]
    flat = [token for paragraph in tokens for token in paragraph]
    budget = min(budget, int(0.8 * sum(not fixed for _, fixed in flat)))  # short texts full of names
    kinds = set()
    while budget > 0:
        start = int(rng.integers(len(flat)))
        run = flat[start:start + int(rng.integers(1, 4))]
        if any(fixed for _, fixed in run):
            continue
        deleting = rng.random() < 0.3
        for token in run:
            prefix, core, suffix = _TOKEN.match(token[0]).groups()
            token[0] = "" if deleting else prefix + (SYNONYMS.get(core.lower()) or vocabulary[rng.integers(len(vocabulary))]) + suffix
            token[1] = True
        kinds.add("delete" if deleting else "substitute")
        budget -= len(run)
    edits += sorted(kinds)
    return [" ".join(word for word, _ in p if word) for p in tokens], edits


def wire_copy(article: dict, number: int, keys: list[str], vocabulary: list[str], rng) -> tuple[dict, list[str]]:
    """One copy of an agency article: its title, body paragraphs, decorations and the edits made."""
    headline_a, headline_b, city = WIRE[article["source_key"]]
    edits = []
    title = article["title"]
    if rng.random() < 0.85:
        title = (headline_a, headline_b, f"Kort: {headline_b}")[number]
        edits.append("headline")
    kept = len(article["paragraphs"])
    if kept >= 3 and rng.random() < 0.6:
        kept -= 1
        edits.append("cut_last_paragraph")
    body, word_edits = edit_words(article["paragraphs"][:kept], float(rng.uniform(0, 0.29)), keys, vocabulary, rng)
    edits += word_edits
    decoration = DECORATIONS[rng.choice(len(DECORATIONS), p=[0.45, 0.25, 0.15, 0.15])]
    shown = list(body)
    if decoration == "dateline":
        shown[0] = f"{city} ({AGENCY}) - {shown[0]}"
    elif decoration == "byline":
        shown.insert(0, ("Door onze redactie", "Van onze correspondent", "Door onze buitenlandredactie")[rng.integers(3)])
    elif decoration == "credit":
        shown.append(("(c) NPA", "Bron: NPA", f"{AGENCY}/redactie")[rng.integers(3)])
    if decoration:
        edits.append(decoration)
    return {"title": title, "paragraphs": shown, "body": body, "kept": kept}, edits


def date_value(day: dt.date, form: str, rng):
    """``day`` written as the importer meets it in the wild: see SOURCE.md for the forms."""
    summer = dt.date(2022, 3, 27) <= day < dt.date(2022, 10, 30)  # CEST in 2022
    offset = dt.timedelta(hours=2 if summer else 1)
    local = dt.datetime.combine(day, dt.time(int(rng.integers(7, 22)), int(rng.choice([0, 5, 15, 30, 45]))))
    if form == "day":
        return day.isoformat()
    if form == "offset":
        return local.replace(tzinfo=dt.timezone(offset)).isoformat()
    if form == "z":
        return (local - offset).strftime("%Y-%m-%dT%H:%M:%SZ")
    return int(local.replace(tzinfo=dt.timezone(offset)).timestamp())  # "unix"


def main() -> None:
    rng = np.random.default_rng(SEED)
    sources = load_ntrex()
    sources[SEED_ID] = load_seed()
    vocabulary = sorted({w for a in sources.values() for p in a["paragraphs"] for w in re.findall(r"\b[a-zà-ÿ]{4,}\b", p)})
    retellings = {r["doc_id"]: r for r in map(json.loads, (HERE / "retellings.jsonl").read_text(encoding="utf-8").splitlines())}
    wire_ids = {f"ntrex-{key}" for key in WIRE}
    keys: dict[str, list[str]] = {}  # source article -> the key words of its questions
    for question in QUESTIONS:
        for source in question[2]:
            keys.setdefault(source if source == SEED_ID else f"ntrex-{source}", []).extend(
                [question[4]] if isinstance(question[4], str) else question[4])

    # Dates: an event's articles lie within three days; pinned articles fix their event's day.
    dates: dict[str, dt.date] = {}
    for group in [[f"ntrex-{key}" for key in event] for event in EVENTS] + [[key] for key in sources]:
        if any(key in dates for key in group):
            continue
        pinned = [dt.date.fromisoformat(PINNED[key[6:]]) for key in group if key[6:] in PINNED]
        base = pinned[0] if pinned else YEAR_START + dt.timedelta(days=int(rng.integers(0, 360)))
        for i, key in enumerate(group):
            dates[key] = base if key[6:] in PINNED else base + dt.timedelta(days=i % 3)
    dates[SEED_ID] = dt.date(2022, 10, 6)  # the seed says "date 2022-10"; Putin's birthday is 7 October

    docs: dict[str, dict] = {}  # doc_id -> record fields before formatting
    for key, article in sources.items():
        publisher = AGENCY if key in wire_ids else list(PAPERS)[rng.integers(len(PAPERS))]
        docs[key] = {"title": article["title"], "paragraphs": article["paragraphs"], "body": article["paragraphs"],
                     "kept": len(article["paragraphs"]), "date": dates[key], "publisher": publisher, "origin": key}
    pairs, clusters = [], {}
    for key in sorted(wire_ids):
        members = [key]
        for number, publisher in enumerate(rng.permutation(list(PAPERS))[: int(rng.integers(1, 4))]):
            copy, edits = wire_copy({**docs[key], "source_key": key[6:]}, number, keys.get(key, []), vocabulary, rng)
            day = docs[key]["date"] + dt.timedelta(days=int(rng.integers(0, 3)))
            if key[6:] in PINNED:
                day = docs[key]["date"] + dt.timedelta(days=int(rng.integers(0, 2)))
            doc_id = new_id(str(publisher), day, f"{key}/copy{number}")
            docs[doc_id] = {**copy, "date": day, "publisher": str(publisher), "origin": key, "edits": edits}
            members.append(doc_id)
        clusters[key] = members
        for a, b in itertools.combinations(members, 2):
            x, y = docs[a], docs[b]
            reference = words_of(sources[key]["paragraphs"][: min(x["kept"], y["kept"])])
            edits = sorted(set(x.get("edits", [])) | set(y.get("edits", [])))
            pairs.append({"a": a, "b": b, "kind": "wire",
                          "changed": changed_fraction(reference, words_of(x["body"]), words_of(y["body"])), "edits": edits})
    for key, retelling in retellings.items():
        original = docs[key]
        publisher = [p for p in PAPERS if p != original["publisher"]][rng.integers(len(PAPERS) - 1)]
        day = original["date"] + dt.timedelta(days=0 if key[6:] in PINNED else int(rng.integers(0, 3)))
        doc_id = new_id(publisher, day, f"{key}/retelling")
        paragraphs = retelling["text"].split("\n\n")
        docs[doc_id] = {"title": retelling["title"], "paragraphs": paragraphs, "body": paragraphs, "kept": len(paragraphs),
                        "date": day, "publisher": publisher, "origin": key}
        ratio = len(words_of(paragraphs)) / len(words_of(original["paragraphs"]))
        if not 0.75 <= ratio <= 1.3:
            raise SystemExit(f"retelling of {key} is {ratio:.2f} times the original's length")
        pairs.append({"a": key, "b": doc_id, "kind": "same_event", "edits": ["retold by hand"],
                      "changed": changed_fraction(words_of(original["paragraphs"]), words_of(original["paragraphs"]), words_of(paragraphs))})
    for a, b in NATURAL_PAIRS:
        a, b = f"ntrex-{a}", f"ntrex-{b}"
        pairs.append({"a": a, "b": b, "kind": "same_event", "edits": ["independent report (ntrex)"],
                      "changed": changed_fraction(words_of(docs[a]["paragraphs"]), words_of(docs[a]["paragraphs"]), words_of(docs[b]["paragraphs"]))})

    # Questions: every doc that tells the story answers it (wire copies and retellings too).
    derived = {}
    for doc_id, doc in docs.items():
        derived.setdefault(doc["origin"], []).append(doc_id)
    questions, answering = [], set()
    for number, (text, lang, origins, span, key) in enumerate(QUESTIONS, start=1):
        origins = [origin if origin == SEED_ID else f"ntrex-{origin}" for origin in origins]
        answers = sorted(doc_id for origin in origins for doc_id in derived[origin])
        answering.update(answers)
        for doc_id in answers:
            text_of = "\n\n".join(docs[doc_id]["paragraphs"]).casefold()
            if not any(k.casefold() in text_of for k in ([key] if isinstance(key, str) else key)):
                raise SystemExit(f"question {number}: {doc_id} lacks {key!r}")
        record = {"id": f"news-q{number:02d}", "question": text, "lang": lang, "answer_doc_ids": answers}
        days = [docs[doc_id]["date"] for doc_id in answers]
        if isinstance(span, tuple):
            since, until = map(dt.date.fromisoformat, span)
            if not all(since <= day <= until for day in days):
                raise SystemExit(f"question {number}: an answer lies outside {span}")
            record |= {"since": span[0], "until": span[1], "expect_since": span[0], "expect_until": span[1]}
        elif span:
            since = min(days) - dt.timedelta(days=int(rng.integers(0, 15)))
            until = max(days) + dt.timedelta(days=int(rng.integers(0, 15)))
            record |= {"since": since.isoformat(), "until": until.isoformat()}
        questions.append(record)

    # Date forms and URLs; month-only and unreadable dates only on docs no question needs.
    free = sorted(set(docs) - answering - {SEED_ID})
    odd = [free[i] for i in rng.choice(len(free), size=8, replace=False)]
    month_only, unreadable, hostile, aliased = odd[:2], odd[2:5], odd[5:7], odd[7:]
    unreadable_values = iter(["onbekend", "", "31-02-2022"])
    hostile_urls = iter(["javascript:alert(1)", "ftp://archief.npa.example/2022/bericht.txt"])
    aliased += [free[i] for i in rng.choice(len(free), size=4, replace=False) if free[i] not in odd]
    records = []
    for doc_id, doc in docs.items():
        day = doc["date"]
        if doc_id == SEED_ID or doc_id in month_only:
            date = f"{day:%Y-%m}"
        elif doc_id in unreadable:
            date = next(unreadable_values)
        else:
            date = date_value(day, str(rng.choice(["day", "offset", "z", "unix"], p=[0.62, 0.13, 0.10, 0.15])), rng)
        record = {"doc_id": doc_id, "title": doc["title"], "text": "\n\n".join(doc["paragraphs"]), "date": date,
                  ("source" if doc_id in aliased else "publisher"): doc["publisher"]}
        if doc_id in hostile:
            record["url"] = next(hostile_urls)
        elif rng.random() < 0.9:
            record["url"] = f"https://{SLUGS[doc['publisher']]}.example/{day:%Y/%m}/{slugify(doc['title'])}"
        records.append((day, doc_id, record))

    def write(name: str, rows) -> None:
        with open(HERE / name, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)

    write("articles.jsonl", [record for _, _, record in sorted(records, key=lambda r: (r[0], r[1]))])
    write("pairs.jsonl", pairs)
    write("questions.jsonl", questions)
    wire = [p for p in pairs if p["kind"] == "wire"]
    print(f"{len(docs)} articles ({len(sources)} originals, {len(docs) - len(sources) - len(retellings)} wire copies of "
          f"{len(clusters)} agency articles, {len(retellings)} retellings); {len(wire)} wire pairs, "
          f"{len(pairs) - len(wire)} same-event pairs; {len(questions)} questions "
          f"({sum('since' in q for q in questions)} with a date range, {sum('expect_since' in q for q in questions)} with time words)")


if __name__ == "__main__":
    main()
