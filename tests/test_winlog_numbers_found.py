"""``normalize.wanted_numbers``: which wanted event ids stand in a record's raw text as numbers
of their own, said with ``str.find`` for speed. The oracle is the regular expression it
replaced, ``(?<![\\d.])(?:4624|...)(?!\\d)``, run on the shared logs' raw lines and on random text
built to sit on every boundary (ids inside longer numbers, after a decimal point, at either
end, beside digits of other scripts, which ``\\d`` counts as digits too)."""

from __future__ import annotations

import gzip
import random
import re

import pytest
from conftest import shared_dir

from smbwatch.winlog.normalize import WANTED, wanted_numbers

pytestmark = pytest.mark.unit

ORACLE = re.compile(r"(?<![\d.])(?:" + "|".join(map(str, sorted(WANTED))) + r")(?!\d)")


def expected(text: str) -> set[int]:
    return {int(number) for number in ORACLE.findall(text)}


def test_the_shared_logs_raw_lines() -> None:
    lines = []
    for path in sorted((shared_dir() / "data" / "host").glob("*.json.gz")):
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as log:
            lines.extend(log.read().splitlines())
    found = [wanted_numbers(line) for line in lines]
    assert found == [expected(line) for line in lines]
    assert 0 < sum(map(bool, found)) < len(lines)  # some lines hold an id, some none


def test_random_text_on_every_boundary() -> None:
    pieces = [str(code) for code in sorted(WANTED)] + list("0123456789. ax\"':") + ["٣", "²", "1."]
    draw = random.Random(4624)
    texts = ["".join(draw.choices(pieces, k=draw.randint(0, 12))) for _ in range(50_000)]
    assert [wanted_numbers(text) for text in texts] == [expected(text) for text in texts]
    assert sum(1 for text in texts if expected(text)) > 10_000
    assert sum(1 for text in texts if not expected(text) and "4624" in text) > 1_000
