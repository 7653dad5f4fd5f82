"""The corpus in the repository is what SOURCES.md says it is: every file listed, each
of the listed size and hash, nothing unlisted (tests/corpus/README.md)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

_ENTRY = re.compile(r"^### `([^`]+)`\n(?:.*\n)*?- Size: (\d+) bytes; sha256 `([0-9a-f]+)…`",
                    re.MULTILINE)
_OURS = {"SOURCES.md", "README.md", "LICENSE-Apache-2.0"}


def test_every_corpus_file_is_byte_for_byte_what_sources_lists(corpus: Path) -> None:
    listed = {path: (int(size), digest) for path, size, digest
              in _ENTRY.findall((corpus / "SOURCES.md").read_text())}
    assert len(listed) >= 60
    present = {str(p.relative_to(corpus)) for p in corpus.rglob("*") if p.is_file()} - _OURS
    assert present == set(listed)
    for path, (size, digest) in sorted(listed.items()):
        data = (corpus / path).read_bytes()
        assert len(data) == size, path
        assert hashlib.sha256(data).hexdigest().startswith(digest), path
