"""sniff_magic on real files, with libmagic (``file``) as the independent judge."""

from __future__ import annotations

import glob
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from smbwatch.filedata.magic import sniff_magic

pytestmark = pytest.mark.oracle

# What libmagic's description says, for each of sniff_magic's answers that these files cover.
LIBMAGIC_WORDS = {
    "PE": "PE32",
    "ELF": "ELF",
    "script": "script",
    "gzip": "gzip compressed",
    "ZIP": "Zip archive",
    "EVTX": "Event Log",
}


def libmagic(path: Path) -> str:
    binary = shutil.which("file")
    if binary is None:
        raise RuntimeError("the file command (libmagic) is required by this test")
    return subprocess.run(
        [binary, "-b", "-L", str(path)], capture_output=True, text=True, check=True
    ).stdout


def real_files(shared_data: Path, tmp_path: Path) -> list[Path]:
    """Files of several kinds that exist on this machine or in the shared corpus."""
    site = Path(sys.prefix) / "lib"
    files = [Path(sys.executable).resolve(), Path(sys.executable).parent / "pytest"]
    files += [
        Path(p)
        for p in sorted(glob.glob(f"{site}/python3*/site-packages/pip/**/*.exe", recursive=True))[
            :4
        ]
    ]
    files += sorted(Path("/usr/share/doc").glob("*/changelog.gz"))[:3]
    files += sorted(shared_data.glob("host/*.evtx"))[:2]
    files += sorted(Path("/usr/share/doc").glob("*/copyright"))[:2]  # text: none of the kinds
    archive = tmp_path / "made.zip"
    with zipfile.ZipFile(archive, "w") as made:
        made.writestr("a.txt", "zip made by the zipfile module")
    files.append(archive)
    return [path for path in files if path.is_file()]


def test_each_answer_agrees_with_libmagic(shared_data: Path, tmp_path: Path) -> None:
    answers = set()
    for path in real_files(shared_data, tmp_path):
        answer = sniff_magic(path.read_bytes()[:512])
        description = libmagic(path)
        expected = [name for name, words in LIBMAGIC_WORDS.items() if words in description]
        assert [answer] == expected or (answer is None and expected == []), (path, description)
        answers.add(answer)
    assert {"PE", "ELF", "script", "gzip", "ZIP", "EVTX", None} <= answers


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"", None),
        (b"M", None),
        (b"PK\x03\x04" + b"\x00" * 26 + b"[Content_Types].xml", "OOXML"),
        (b"\x00\x00\x00\x00\xef\xcd\xab\x89", "ESE"),
        (b"@echo off\r\ncopy x y", "script"),
    ],
)
def test_short_and_structural_heads(head: bytes, expected: str | None) -> None:
    assert sniff_magic(head) == expected
