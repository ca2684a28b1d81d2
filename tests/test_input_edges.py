"""The edges a new user hit (issue 11): help, exit codes, job counts, forced formats, zipped
inputs, and what ``--extract-files`` leaves behind.

Zip archives are written by Info-ZIP's ``zip`` (stored, deflate, ZipCrypto with a password) and,
for WinZip AES, which ``zip`` cannot write, by pyzipper's writer; what is read out of them is
compared with the same file read from disk.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
import pyzipper
from conftest import REPO
from hostile_support import EVTX, MIB, NXLOG, SMB2_CAPTURE, peak_rss, smbwatch

from smbwatch.events import SmbEvent
from smbwatch.sinks.extract import FileExtractor

pytestmark = pytest.mark.unit

PASSWORD = "infected"
FILES = (
    next((SMB2_CAPTURE.parents[1] / "filestore-filecontainer-smb1-data-offset").glob("*.pcap")),
    EVTX,
    NXLOG,
)


def info_zip(archive: Path, *files: Path, password: str | None = None, store: bool = False):
    """A zip archive written by Info-ZIP (members named by their file names)."""
    tool = shutil.which("zip")
    assert tool is not None, "zip (Info-ZIP) is required: scripts/install-test-deps.sh"
    command = [tool, "-j", "-q", "-0" if store else "-6", str(archive), *map(str, files)]
    if password is not None:
        command[2:2] = ["-P", password]
    subprocess.run(command, check=True)
    return archive


def aes_zip(archive: Path, *files: Path, password: str = PASSWORD) -> Path:
    with pyzipper.AESZipFile(
        archive, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES
    ) as zipped:
        zipped.setpassword(password.encode())
        for file in files:
            zipped.write(file, file.name)
    return archive


def without_file(events: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "source_file"} for e in events]


@pytest.fixture(scope="module")
def plain() -> list[dict]:
    """The events of the files read from disk, one after the other."""
    return smbwatch("events", "-f", "jsonl", "-j", "1", *FILES).clean(0).events


# help and exit codes ------------------------------------------------------------------------


def test_help_opens_with_what_smbwatch_does() -> None:
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "smbwatch"), "--help"], capture_output=True, text=True
    )
    first = done.stdout.split("\n\n")[1]
    assert first.startswith("smbwatch shows lateral movement over SMB")
    assert "wiring" not in done.stdout


@pytest.mark.parametrize("verb", ["events", "detect", "incidents", "report", "ingest", "timeline"])
def test_each_verb_lists_every_exit_code(verb: str) -> None:
    help_text = smbwatch(verb, "--help").clean(0).stdout
    readme = (REPO / "README.md").read_text()
    table = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", readme, re.M))
    assert set(table) >= {"0", "1", "2", "3", "130", "143"}
    for code in table:
        assert re.search(rf"(^\s+|; ){code}:?\s", help_text, re.M), code


def test_the_readme_sends_no_one_outside_the_repository() -> None:
    for page in [REPO / "README.md", REPO / "CONTRIBUTING.md", *(REPO / "docs").glob("*.md")]:
        text = page.read_text()
        assert "DESIGN.md" not in text, page  # ../shared/DESIGN.md: not in a clone
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
    assert "docs/design.md" in (REPO / "README.md").read_text()


@pytest.mark.parametrize("jobs", ["0", "-1", "many"])
def test_a_job_count_below_one_is_refused(jobs: str) -> None:
    run = smbwatch("events", "-j", jobs, SMB2_CAPTURE).clean(2)
    assert run.stdout == "" and len(run.stderr.splitlines()) == 1
    assert "-j/--jobs" in run.stderr


def test_a_forced_format_that_does_not_fit_a_named_input_is_a_user_error() -> None:
    alone = smbwatch("events", "--input-format", "json", "-f", "jsonl", SMB2_CAPTURE).clean(2)
    assert f"{SMB2_CAPTURE}: a pcap file, not json (--input-format)" in alone.stderr
    assert alone.events == []
    both = smbwatch(
        "events", "--input-format", "json", "-f", "jsonl", "-j", "1", SMB2_CAPTURE, NXLOG
    ).clean(2)
    assert both.events == smbwatch("events", "-f", "jsonl", NXLOG).events  # still read
    capture = smbwatch("events", "--input-format", "pcapng", "-f", "jsonl", SMB2_CAPTURE)
    assert capture.clean(0).events  # pcap and pcapng: one reader tells them apart


# zip archives -------------------------------------------------------------------------------


@pytest.mark.parametrize("store", [False, True])
def test_the_members_of_a_zip_archive_are_read_as_inputs(
    tmp_path: Path, plain: list[dict], store: bool
) -> None:
    archive = info_zip(tmp_path / "set.zip", *FILES, store=store)
    run = smbwatch("events", "-f", "jsonl", archive).clean(0)
    assert without_file(run.events) == without_file(plain)
    assert {e["source_file"] for e in run.events} == {f"{archive}/{f.name}" for f in FILES}
    hashed = [e["sha256"] for e in run.events if e.get("sha256")]
    assert hashed and hashed == [e["sha256"] for e in plain if e.get("sha256")]


@pytest.mark.parametrize("encryption", ["zipcrypto", "aes"])
def test_encrypted_members_are_read_with_the_published_password(
    tmp_path: Path, plain: list[dict], encryption: str
) -> None:
    archive = tmp_path / "infected.zip"
    if encryption == "aes":
        aes_zip(archive, *FILES)
    else:
        info_zip(archive, *FILES, password=PASSWORD)
    run = smbwatch("events", "-f", "jsonl", "--zip-password", PASSWORD, archive).clean(0)
    assert without_file(run.events) == without_file(plain)
    missing = smbwatch("events", "-f", "jsonl", archive).clean(2)
    assert missing.events == [] and "--zip-password" in missing.stderr
    wrong = smbwatch("events", "-f", "jsonl", "--zip-password", "guess", archive)
    assert wrong.clean(2).events == [] and "wrong password" in wrong.stderr


def test_a_zip_inside_a_directory_is_read_too(tmp_path: Path, plain: list[dict]) -> None:
    folder = tmp_path / "evidence"
    folder.mkdir()
    info_zip(folder / "1-capture.zip", FILES[0])
    shutil.copy(FILES[1], folder / "2-security.evtx")
    (folder / "notes.txt").write_text("chain of custody\n")
    info_zip(folder / "3-more.zip", FILES[2], folder / "notes.txt")
    run = smbwatch("events", "-f", "jsonl", "-j", "2", folder).clean(0)
    assert without_file(run.events) == without_file(plain)
    assert run.warned("input_skipped") == 2  # notes.txt, on its own and in more.zip


def test_a_zip_bomb_member_costs_that_member_not_the_memory(tmp_path: Path) -> None:
    zeros = tmp_path / "zeros.pcap"
    with zeros.open("wb") as out:
        out.write(SMB2_CAPTURE.read_bytes())
        for _ in range(300):
            out.write(bytes(MIB))
    archive = info_zip(tmp_path / "bomb.zip", zeros, EVTX)
    zeros.unlink()
    assert archive.stat().st_size < 3 * MIB
    run, peak = peak_rss("events", "-f", "jsonl", "--no-hash", archive)
    run.clean(3)
    assert "decompression stopped" in run.stderr
    from_evtx = [e for e in run.events if e["source_file"].endswith(EVTX.name)]
    assert len(from_evtx) == len(smbwatch("events", "-f", "jsonl", EVTX).events)
    assert peak < 100 * MIB, f"peak {peak >> 20} MiB"


def test_a_truncated_zip_archive_is_damage_or_refused_never_a_traceback(tmp_path: Path) -> None:
    whole = info_zip(tmp_path / "whole.zip", *FILES).read_bytes()
    for cut in (10, 100, len(whole) // 2, len(whole) - 30):
        archive = tmp_path / f"cut-{cut}.zip"
        archive.write_bytes(whole[:cut])
        run = smbwatch("events", "-f", "jsonl", archive)
        assert "Traceback" not in run.stderr and run.code in (2, 3), run.stderr


def test_members_other_than_stored_or_deflate_are_refused_in_one_line(tmp_path: Path) -> None:
    archive = tmp_path / "bzip2.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_BZIP2) as zipped:
        zipped.write(SMB2_CAPTURE, "capture.pcap")
    run = smbwatch("events", archive).clean(2)
    assert "compression method 12 is not read" in run.stderr


# --extract-files ----------------------------------------------------------------------------


def _store_sightings(directory: str, content: bytes, count: int) -> None:
    extractor = FileExtractor(directory)
    digest = hashlib.sha256(content).hexdigest()
    for number in range(count):
        event = SmbEvent(time=number, source="network", action="close", sha256=digest)
        extractor.store(content, event, (number, number), (number, number))


def test_extraction_leaves_no_lock_file_and_still_serialises_writers(tmp_path: Path) -> None:
    directory = tmp_path / "files"
    content = b"MZ" + bytes(1000)
    workers = [
        multiprocessing.get_context("fork").Process(
            target=_store_sightings, args=(str(directory), content, 50)
        )
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    digest = hashlib.sha256(content).hexdigest()
    assert sorted(p.name for p in directory.iterdir()) == [digest, f"{digest}.json"]
    sidecar = json.loads((directory / f"{digest}.json").read_text())
    assert sidecar["sightings_total"] == 200  # no update lost between the four processes


def test_a_sidecar_is_as_safe_to_cat_as_json_lines(tmp_path: Path) -> None:
    """The names in a sidecar come from the wire: direction and C1 controls are escaped there
    too, and a lone surrogate (undecodable UTF-16) does not stop the extraction."""
    content = b"MZ" + bytes(100)
    digest = hashlib.sha256(content).hexdigest()
    hostile = "invoice\u202eexe.txt\x9b\ud800"
    event = SmbEvent(time=0, source="network", action="close", sha256=digest, path=hostile)
    FileExtractor(tmp_path).store(content, event, (0, 1), (0, 1))
    raw = (tmp_path / f"{digest}.json").read_bytes()
    assert "\u202e".encode() not in raw and "\x9b".encode() not in raw
    assert json.loads(raw)["sightings"][0]["path"] == hostile
