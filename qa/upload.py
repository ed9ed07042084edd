"""Articles uploaded through the app (`app.py --allow-upload`): checked, then placed in the corpus
folder, never outside it and never over a file that is there. SECURITY.md says why it is off by
default.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .corpus import SUFFIXES, scan_corpus
from .errors import CorpusError

MAX_UPLOAD_BYTES = 5_000_000   # per file; a day of news as JSONL is well under it
MAX_UPLOAD_FILES = 20          # per upload
# A plain file name: starts with a letter or digit, then letters, digits, spaces, . _ - ( ).
# No separators, no leading dot (hidden files are not read), no control or bidi characters.
_NAME = re.compile(r"[^\W_][\w .()-]{0,150}")


@dataclass(frozen=True)
class Upload:
    """What happened to one uploaded file."""

    name: str
    ok: bool
    message: str


def place_uploads(files: Iterable[tuple[str | Path, str]], corpus: str | Path,
                  is_indexed: Callable[[str], bool]) -> list[Upload]:
    """Check uploaded files and move the good ones into the corpus folder; nothing is indexed yet.

    Args:
        files: (path of the uploaded copy, the name it was uploaded as).
        corpus: the corpus folder; files land directly in it.
        is_indexed: whether an article id is in the index already (a JSONL upload may not
            replace an article, and a text file may not take an existing name).

    Returns:
        One Upload per file, in order; a file that is refused leaves nothing behind.
    """
    corpus = Path(corpus)
    files = list(files)
    if len(files) > MAX_UPLOAD_FILES:
        return [Upload(Path(name).name, False, f"at most {MAX_UPLOAD_FILES} files at a time") for _, name in files]
    return [_place(Path(path), Path(name).name, corpus, is_indexed) for path, name in files]


def _place(path: Path, name: str, corpus: Path, is_indexed: Callable[[str], bool]) -> Upload:
    if not _NAME.fullmatch(name) or Path(name).suffix.lower() not in SUFFIXES:
        return Upload(name, False, "not a .txt, .md or .jsonl file with a plain name (letters, digits, spaces, . _ - ( ))")
    size = path.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        return Upload(name, False, f"{size:,} bytes, more than the {MAX_UPLOAD_BYTES:,}-byte limit; split it")
    target = corpus / name
    if target.exists() or is_indexed(name):
        return Upload(name, False, "a file with this name is in the corpus already; rename it")
    # A hidden temporary name in the corpus folder (the corpus reader skips hidden files), read
    # back as the corpus reader will read it, then linked to its name: it appears whole or not at all.
    temporary = corpus / f".upload-{secrets.token_hex(4)}{Path(name).suffix}"
    try:
        shutil.copyfile(path, temporary)
        articles = scan_corpus([temporary]).articles
        taken = [a.doc_id for a in articles if name.endswith(".jsonl") and is_indexed(a.doc_id)]
        if taken:
            return Upload(name, False, f"article id {taken[0]!r} is in the corpus already; give new articles new ids")
        os.link(temporary, target)
    except CorpusError as exc:
        return Upload(name, False, str(exc).replace(str(temporary), name))
    except FileExistsError:
        return Upload(name, False, "a file with this name is in the corpus already; rename it")
    except OSError as exc:
        return Upload(name, False, f"cannot be written into the corpus folder ({exc.strerror or exc})")
    finally:
        temporary.unlink(missing_ok=True)
    return Upload(name, True, f"{len(articles)} article{'s' if len(articles) != 1 else ''}")
