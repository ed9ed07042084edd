"""Shared fixtures: the real bundled model (loaded once) and a seed-corpus index built once."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture(scope="session")
def real_embedder():
    from qa.embedding import load_embedder

    return load_embedder()


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory, real_embedder):
    """The seed corpus indexed with the real model, in a session-wide temporary folder."""
    from qa import QA

    index_dir = tmp_path_factory.mktemp("seed-index")
    QA.build([SEEDS], index_dir, embedder=real_embedder)
    return index_dir


@pytest.fixture(scope="session")
def seed_qa(seed_index, real_embedder):
    from qa import QA

    return QA.load(seed_index, embedder=real_embedder)


NEWS = {
    "oorlog.txt": "date 2022-10 Het Oekraïense leger heeft in minder dan een week 400 vierkante kilometer bevrijd. "
                  "Dat meldden de strijdkrachten donderdag.\n\nZelenski sprak over 500 vierkante kilometer.",
    "economie.txt": "date 2023-01-15 De inflatie in Nederland daalde in december naar 9,6 procent. "
                    "Dat meldt het CBS. Vooral energie werd goedkoper.",
    "sport.txt": "date 2022-12 Argentinië won het WK voetbal in Qatar na strafschoppen tegen Frankrijk. "
                 "Lionel Messi werd uitgeroepen tot beste speler.",
    "weer.md": "# Weer\n\nHet KNMI waarschuwt voor gladheid in het noorden. De temperatuur daalt tot min 5 graden.",
    "politiek.txt": "date 2023-03 Bij de Provinciale Statenverkiezingen werd de BBB de grootste partij met 15 zetels "
                    "in de Eerste Kamer. Caroline van der Plas sprak van een historische overwinning.",
    "wetenschap.txt": "date 2023-02 Astronomen van de Universiteit Leiden ontdekten een nieuwe exoplaneet. "
                      "De planeet draait in 1.127 dagen om haar ster.",
}


@pytest.fixture
def news_dir(tmp_path) -> Path:
    """A small corpus of six Dutch news texts."""
    return write_news(tmp_path / "news")


def write_news(folder: Path) -> Path:
    """Write the six NEWS texts into folder (created if needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in NEWS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def hash_qa(news_dir, tmp_path):
    """The small corpus indexed with the fast hashing embedder."""
    from qa import QA

    return QA.build([news_dir], tmp_path / "index", model="hash-64")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(qa, **options):
    """The chat app on a free local port (`options` go to `app.build_app`); yields its URL."""
    import app  # a script at the project root, on sys.path by pytest's pythonpath setting

    port = free_port()
    demo = app.build_app(qa, **options)
    app.launch_app(demo, port=port, block=False, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


MODEL_FIXTURES = {"real_embedder", "seed_index", "seed_qa"}


def pytest_collection_modifyitems(items):
    # A test that uses the real model is a `model` test whether or not it says so, so that
    # `-m "not model"` (make test-fast) never loads the model.
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.model)
