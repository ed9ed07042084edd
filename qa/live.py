"""A `QA` that follows its index folder: when a sync or build (in this process or another one)
makes a new generation live, the next question is answered from it, without a restart; and a
`Watcher` that syncs the index whenever the corpus folder changes.

A `QA` never changes, so following means replacing the shared reference: questions in flight
keep the object they started with (its files stay readable after a clean-up removes them, as
they are memory-mapped), new questions get the new one.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from .api import QA
from .corpus import corpus_state
from .errors import QAError
from .store import CURRENT

log = logging.getLogger("nieuws-qa.live")
# After a failed load (say the index was rebuilt with another model), the old index keeps serving
# and the new one is tried again only after this long, not on every question.
RETRY_SECONDS = 30.0


class LiveQA:
    """The QA to answer with, reloaded when the index folder's live generation changes.

    Args:
        qa: the QA serving now.
        index_dir: the folder it follows (default: the one `qa` was loaded from).
    """

    def __init__(self, qa: QA, index_dir: str | Path | None = None):
        self._qa = qa
        self.index_dir = Path(index_dir) if index_dir is not None else qa.folder.parent
        self._loading = threading.Lock()
        self._failed: tuple[str, float] | None = None

    def get(self) -> QA:
        """The QA of the live generation: one small file read when nothing changed; the first
        caller after a change loads the new generation (others meanwhile get the previous one)."""
        qa, live = self._qa, self._live_name()
        if live is None or live == qa.folder.name or not self._loading.acquire(blocking=False):
            return qa
        try:
            qa = self._qa
            failed = self._failed
            if live != qa.folder.name and not (failed and failed[0] == live and time.monotonic() < failed[1]):
                try:
                    qa = self._qa = QA.load(self.index_dir, embedder=qa.embedder, settings=qa.settings)
                    log.info("now answering from %s (%d documents, %d chunks)", qa.folder.name, len(qa.docs),
                             len(qa.chunks))
                except QAError as exc:
                    self._failed = (live, time.monotonic() + RETRY_SECONDS)
                    log.warning("keeps answering from %s: the new index cannot be loaded (%s)", qa.folder.name, exc)
            return qa
        finally:
            self._loading.release()

    def _live_name(self) -> str | None:
        try:
            return (self.index_dir / CURRENT).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None


class Watcher(threading.Thread):
    """Syncs an index with a corpus folder whenever the folder's files change (`app.py --watch`).

    Every `seconds` the corpus is listed (one stat per file, nothing read); when a file was
    added, changed or removed since the last look, the index is synced with skip_bad (a file
    being written or broken is skipped with a warning, and the indexed articles of a file that
    cannot be read are kept) and the new generation is loaded into `live`.
    """

    def __init__(self, live: LiveQA, corpus: str | Path, seconds: float):
        super().__init__(name="nieuws-qa-watch", daemon=True)
        self.live, self.corpus, self.seconds = live, Path(corpus), seconds
        self.stopped = threading.Event()
        self._state = self._look()

    def run(self) -> None:
        while not self.stopped.wait(self.seconds):
            self.check()

    def check(self):
        """Sync if the corpus changed since the last look.

        Returns:
            The SyncReport, or None when nothing changed or the sync failed (logged; the live
            index serves on).
        """
        state = self._look()
        if state is None or state == self._state:
            return None
        self._state = state  # what this sync reads, at least: a change during it is seen next time
        try:
            report = QA.sync([self.corpus], self.live.index_dir, embedder=self.live.get().embedder, skip_bad=True)
        except QAError as exc:
            log.warning("could not sync %s with %s: %s", self.live.index_dir, self.corpus, exc)
            return None
        log.info("synced %s with %s: %s", self.live.index_dir, self.corpus, report.summary())
        self.live.get()  # load it here rather than in the next question
        return report

    def _look(self) -> list | None:
        try:
            return corpus_state([self.corpus])
        except QAError as exc:
            log.warning("cannot list %s: %s", self.corpus, exc)
            return None
