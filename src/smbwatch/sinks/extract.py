"""``--extract-files DIR``: every completely seen file, stored once under its sha256.

The name on disk is only the hash (no extension, nothing from the wire), so a hostile file name
such as ``..\\..\\x`` or ``C:\\Windows\\x.exe`` cannot choose where anything lands; the names as
seen go into a JSON sidecar ``<sha256>.json`` beside it. Data streams into a hidden temporary file
in DIR as it arrives (past its first ``SPOOL`` bytes, kept in memory) and is linked to the hash
when the file is complete, so no file is ever held in memory, and an incomplete one is deleted.
Content seen again is not rewritten: its sidecar lists each sighting (the first
``MAX_SIGHTINGS`` of them, with a total count). Several processes may extract into one DIR: files
are linked into place without overwriting, and sidecars are updated in place under a lock on DIR
itself (``flock`` on the directory: nothing is left in it), so read them once smbwatch is done.
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
from typing import Any, BinaryIO

from smbwatch.events import SmbEvent, format_time
from smbwatch.options import Bytes
from smbwatch.sinks.escape import json_escape

MAX_IN_PROGRESS = 64  # files being extracted at once in one process
SPOOL = 64 << 10  # a file's first bytes stay in memory: most files are small, many repeat
MAX_SIGHTINGS = 32  # sightings listed in a sidecar; the count goes on
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TEMP_PREFIX = ".part-"


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
        """Somewhere for the next file's data, or None when too many are in progress."""
        if self.in_progress >= MAX_IN_PROGRESS:
            return None
        self.in_progress += 1
        return _Extraction(self)

    def temporary(self) -> tuple[int, Path]:
        """A new hidden file in DIR, open for writing: (descriptor, path)."""
        descriptor, name = tempfile.mkstemp(dir=self.directory, prefix=_TEMP_PREFIX)
        return descriptor, Path(name)

    def store(
        self, data: Path | bytes, event: SmbEvent, first: tuple[int, int], last: tuple[int, int]
    ) -> None:
        """Put a complete file (a temporary file, or its bytes) in place under its hash unless
        that content is there already, and record the sighting in the sidecar."""
        sha256 = event.sha256 or ""
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        final = self.directory / sha256
        if isinstance(data, bytes) and not final.exists():
            descriptor, temporary = self.temporary()
            with open(descriptor, "wb") as handle:
                handle.write(data)
            data = temporary
        if isinstance(data, Path):
            try:
                os.link(data, final)  # never replaces: the same content stays as first written
            except FileExistsError:
                pass
            finally:
                data.unlink()
        with self._locked():
            self._add_sighting(sha256, event, sighting_of(event, first, last))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """DIR locked against the other processes extracting into it (released on close)."""
        descriptor = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    def _add_sighting(self, sha256: str, event: SmbEvent, sighting: dict[str, Any]) -> None:
        """Add a sighting to the sidecar, rewritten in place (the lock is held): replacing or
        emptying it would make the file system flush it every time."""
        descriptor = os.open(self.directory / f"{sha256}.json", os.O_RDWR | os.O_CREAT, 0o644)
        with open(descriptor, "r+b") as sidecar:
            record = _record(sidecar.read())
            if record is None:
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
            # Escaped as JSON lines are; a lone surrogate (undecodable UTF-16 from the wire) as
            # the \udXXX escape JSON reads back as itself.
            text = json_escape(json.dumps(record, ensure_ascii=False))
            sidecar.seek(0)
            sidecar.write(text.encode("utf-8", "backslashreplace"))
            sidecar.truncate()  # only ever shorter when a damaged sidecar is started again


def _record(text: bytes) -> dict[str, Any] | None:
    """The sidecar's record, or None when it is new (or was left unreadable)."""
    try:
        record = json.loads(text) if text else None
    except ValueError:
        return None
    if isinstance(record, dict) and isinstance(record.get("sightings"), list):
        return record
    return None


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
    """One file as its data streams in: its first ``SPOOL`` bytes in memory, then a hidden
    temporary file in DIR."""

    def __init__(self, extractor: FileExtractor) -> None:
        self.extractor = extractor
        self.spool = bytearray()
        self.handle: BinaryIO | None = None
        self.path: Path | None = None
        self.done = False

    def write(self, block: Bytes) -> None:
        if self.handle is None:
            self.spool += block
            if len(self.spool) <= SPOOL:
                return
            descriptor, self.path = self.extractor.temporary()
            self.handle = open(descriptor, "wb")  # noqa: SIM115 (closed by commit/discard)
            block, self.spool = self.spool, bytearray()
        self.handle.write(block)

    def commit(self, event: SmbEvent, first: tuple[int, int], last: tuple[int, int]) -> None:
        self._end()
        data = self.path if self.path is not None else bytes(self.spool)
        self.path = None
        self.extractor.store(data, event, first, last)

    def discard(self) -> None:
        self._end()
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self.path = None

    def _end(self) -> None:
        if not self.done:
            self.done = True
            self.extractor.in_progress -= 1
        if self.handle is not None:
            self.handle.close()
            self.handle = None
