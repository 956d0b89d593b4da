"""The file source: every line a message, blank lines skipped, one final progress report with the full count."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.sources.file import FileProgress, JsonLinesSource


def _drain(src: JsonLinesSource) -> list[bytes]:
    part = src.build_part("in", src.list_parts()[0], None)
    out: list[bytes] = []
    while True:
        try:
            batch = part.next_batch()
        except StopIteration:
            return out
        out += [m.payload for m in batch]


@pytest.mark.parametrize("lines", [5, 6, 7])  # a last batch that is full, or not
def test_progress_reports_done_once_with_every_message(tmp_path: Path, lines: int) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(b'{"n": %d}\n' % i for i in range(lines)) + b"\n")
    reports: list[FileProgress] = []
    payloads = _drain(JsonLinesSource(path, batch_size=3, progress=reports.append))
    assert len(payloads) == lines
    done = [r for r in reports if r.done]
    assert len(done) == 1
    assert done[0].messages == lines and done[0].bytes_done == done[0].bytes_total
