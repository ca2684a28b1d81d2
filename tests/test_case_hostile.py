"""A case that cannot be used as asked: a directory that is no case, a database of something
else, a damaged database, a read-only directory, SQL that fails. Each is one line on stderr,
exit code 2, and the case's files exactly as they were."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from conftest import shared_dir

pytestmark = pytest.mark.unit

OTRF = shared_dir() / "data" / "otrf"
PSEXEC = sorted(OTRF.glob("empire_psexec*"))
MORE = next(OTRF.glob("schtask_create*.json.gz"))
NOBODY = 65534


def smbwatch(*args: str | Path, as_nobody: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "smbwatch.cli", *map(str, args)]
    if as_nobody and os.geteuid() == 0:  # root writes anywhere: be a user who cannot
        command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def snapshot(directory: Path) -> dict[str, str]:
    """Every file below the directory and the sha256 of its bytes."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def one_line_refusal(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("smbwatch: error: ")
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in done.stderr


USES = [  # every verb that opens a case, as a user would run it
    ("ingest", "--case", "{case}", MORE),
    ("query", "--case", "{case}", "SELECT * FROM sightings"),  # reads every block
    ("timeline", "--case", "{case}"),
    ("events", "--case", "{case}", "--src", "172.18.39.5"),
    ("detect", "--case", "{case}"),
]


def run_all(case: Path, as_nobody: bool = False) -> list[subprocess.CompletedProcess[str]]:
    return [
        smbwatch(*(str(case) if a == "{case}" else a for a in use), as_nobody=as_nobody)
        for use in USES
    ]


@pytest.fixture(scope="module")
def good_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    case = tmp_path_factory.mktemp("good") / "case"
    assert smbwatch("ingest", "-q", "--case", case, *PSEXEC).returncode == 0
    return case


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory another user can reach (pytest's own are the owner's only)."""
    path = Path(tempfile.mkdtemp(prefix="smbwatch-test-"))
    path.chmod(0o755)
    yield path
    for below in [path, *path.rglob("*")]:
        below.chmod(0o755 if below.is_dir() else 0o644)
    shutil.rmtree(path)


def test_a_directory_that_is_not_a_case(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("my notes\n")
    before = snapshot(tmp_path)
    for done in run_all(tmp_path):
        one_line_refusal(done, "not a smbwatch case")
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    missing = smbwatch("query", "--case", tmp_path / "nowhere", "SELECT 1")
    one_line_refusal(missing, "no such case")


def test_a_duckdb_database_of_something_else(tmp_path: Path) -> None:
    other = duckdb.connect(str(tmp_path / "case.duckdb"))
    other.execute("CREATE TABLE sales (amount INTEGER)")
    other.close()
    before = snapshot(tmp_path)
    for done in run_all(tmp_path):
        one_line_refusal(done, "not a smbwatch case")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("damage", ["truncated", "garbage", "blocks", "empty"])
def test_a_damaged_database(good_case: Path, tmp_path: Path, damage: str) -> None:
    case = tmp_path / "case"
    shutil.copytree(good_case, case)
    database = case / "case.duckdb"
    data = bytearray(database.read_bytes())
    if damage == "truncated":
        del data[len(data) // 2 :]
    elif damage == "garbage":
        data[:64] = b"\x00not a database\x00" * 4
    elif damage == "blocks":  # every block after the file's headers, a few bytes each
        for at in range(3 * 4096, len(data), 4096):
            data[at + 100 : at + 108] = b"\xde\xad\xbe\xef" * 2
    else:
        data = bytearray()
    database.write_bytes(bytes(data))
    before = snapshot(case)
    for done in run_all(case):
        one_line_refusal(done, str(case))
    assert snapshot(case) == before


def test_a_read_only_directory(good_case: Path, open_dir: Path) -> None:
    case = open_dir / "case"
    shutil.copytree(good_case, case)
    for path in [case, *case.iterdir()]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    before = snapshot(case)
    done = smbwatch("ingest", "--case", case, MORE, as_nobody=True)
    one_line_refusal(done, "cannot write")
    read = smbwatch("query", "--case", case, "SELECT count(*) AS n FROM inputs", as_nobody=True)
    assert read.returncode == 0 and '"n":3' in read.stdout, read.stderr  # reading still works
    assert snapshot(case) == before
    open_dir.chmod(0o555)
    new = smbwatch("ingest", "--case", open_dir / "new", MORE, as_nobody=True)
    one_line_refusal(new, "cannot create")
    assert not (open_dir / "new").exists()


@pytest.mark.parametrize(
    "sql",
    [
        "SELEC * FROM events",
        "SELECT * FROM no_such_table",
        "SELECT no_such_column FROM events",
        "DROP TABLE inputs",
        "DELETE FROM event_rows",
        "INSERT INTO hosts VALUES ('x', [], [], '[]')",
        "CREATE TABLE mine AS SELECT 1",
        "SELECT 1/0::INTEGER, error('a failure of the query itself')",
    ],
)
def test_sql_that_fails(good_case: Path, sql: str) -> None:
    before = snapshot(good_case)
    one_line_refusal(smbwatch("query", "--case", good_case, sql), "query failed")
    assert snapshot(good_case) == before
    assert smbwatch("query", "--case", good_case, "SELECT count(*) FROM events").returncode == 0


def test_damage_found_only_while_writing_leaves_the_case_as_it_was(
    good_case: Path, tmp_path: Path
) -> None:
    """Damage past the tables' data (reading them whole finds nothing) that the ingest meets
    when it adds its input's row to ``inputs`` (its key's index): the input is rolled back and
    the database closed without DuckDB's closing checkpoint, so not one byte changes."""
    case = tmp_path / "case"
    shutil.copytree(good_case, case)
    database = case / "case.duckdb"
    data = bytearray(database.read_bytes())
    for at in range(len(data) // 2, len(data), 4096):
        data[at + 100 : at + 108] = b"\xde\xad\xbe\xef" * 2
    database.write_bytes(bytes(data))
    before = snapshot(case)
    reads = smbwatch("query", "--case", case, "SELECT count(*) AS n FROM sightings")
    assert reads.returncode == 0 and '"n":46' in reads.stdout  # its data reads as it was
    one_line_refusal(smbwatch("ingest", "--case", case, MORE), "Corrupt database file")
    assert snapshot(case) == before
