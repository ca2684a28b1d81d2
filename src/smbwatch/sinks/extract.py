"""``--extract-files DIR``: every completely seen file, stored once under its sha256.

The name on disk is only the hash (no extension, nothing from the wire), so a hostile file name
such as ``..\\..\\x`` or ``C:\\Windows\\x.exe`` cannot choose where anything lands; the names as
seen go into a JSON sidecar ``<sha256>.json`` beside it. Data streams into a hidden temporary file
in DIR as it arrives and is renamed to the hash when the file is complete, so no file is ever
held in memory, and an incomplete one is deleted. Content seen again is not rewritten: its
sidecar lists each sighting (the first ``MAX_SIGHTINGS`` of them, with a total count). Several
processes may extract into one DIR: files are linked into place without overwriting, and
sidecar updates are serialised with a lock file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from smbwatch.events import SmbEvent, format_time

MAX_IN_PROGRESS = 64  # temporary files open at once in one process
MAX_SIGHTINGS = 100  # sightings listed in a sidecar; the count goes on
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TEMP_PREFIX = ".part-"
_LOCK = ".lock"


class ExtractError(Exception):
    """DIR cannot be used (not a directory, not writable)."""


class FileExtractor:
    """The ``options.FileSink`` that stores files in one directory."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExtractError(f"{directory}: cannot create: {exc.strerror}") from None
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise ExtractError(f"{directory}: not a writable directory")
        self.in_progress = 0

    def __getstate__(self) -> dict[str, Any]:
        return {"directory": self.directory, "in_progress": 0}  # per process

    def begin(self) -> _Extraction | None:
        """A temporary file for the next file's data, or None when too many are open."""
        if self.in_progress >= MAX_IN_PROGRESS:
            return None
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed by commit/discard)
            dir=self.directory, prefix=_TEMP_PREFIX, delete=False
        )
        self.in_progress += 1
        return _Extraction(self, handle)

    def store(self, temporary: Path, event: SmbEvent, sighting: dict[str, Any]) -> None:
        """Put a complete temporary file in place under its hash (unless that content is there
        already) and record the sighting in the sidecar."""
        sha256 = event.sha256 or ""
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        final = self.directory / sha256
        try:
            os.link(temporary, final)  # never replaces: the same content stays as first written
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
        with self._locked():
            self._add_sighting(sha256, event, sighting)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.directory / _LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _add_sighting(self, sha256: str, event: SmbEvent, sighting: dict[str, Any]) -> None:
        sidecar = self.directory / f"{sha256}.json"
        record: Any = None
        with contextlib.suppress(OSError, ValueError):
            record = json.loads(sidecar.read_text(encoding="utf-8"))
        if not isinstance(record, dict) or not isinstance(record.get("sightings"), list):
            record = {
                "sha256": sha256,
                "sha1": event.sha1,
                "md5": event.md5,
                "size": event.file_size,
                "magic": event.magic,
                "sightings_total": 0,
                "sightings": [],
            }
        record["sightings_total"] = record.get("sightings_total", 0) + 1
        if len(record["sightings"]) < MAX_SIGHTINGS:
            record["sightings"].append(sighting)
        text = json.dumps(record, ensure_ascii=False, indent=1)
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=self.directory, prefix=_TEMP_PREFIX, delete=False
        ) as handle:
            handle.write(text)
        os.replace(handle.name, sidecar)


def sighting_of(event: SmbEvent, first: tuple[int, int], last: tuple[int, int]) -> dict[str, Any]:
    """Where and by whom a file was seen, for its sidecar (the names as they were on the wire)."""
    fields = {
        "direction": event.direction,
        "server": event.server,
        "share": event.share,
        "path": event.path,
        "src_ip": event.src_ip,
        "src_port": event.src_port,
        "dst_ip": event.dst_ip,
        "dst_port": event.dst_port,
        "user": event.user,
        "domain": event.domain,
        "first_time": format_time(first[0]),
        "last_time": format_time(last[0]),
        "source_file": event.source_file,
        "first_frame": first[1],
        "last_frame": last[1],
        "file_id": event.file_id,
    }
    return {name: value for name, value in fields.items() if value is not None}


class _Extraction:
    """One file streaming into its temporary file."""

    def __init__(self, extractor: FileExtractor, handle: Any) -> None:
        self.extractor = extractor
        self.handle = handle
        self.path = Path(handle.name)

    def write(self, block: bytes) -> None:
        self.handle.write(block)

    def commit(self, event: SmbEvent, first: tuple[int, int], last: tuple[int, int]) -> None:
        self._close()
        self.extractor.store(self.path, event, sighting_of(event, first, last))

    def discard(self) -> None:
        self._close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _close(self) -> None:
        if not self.handle.closed:
            self.extractor.in_progress -= 1
            self.handle.close()
