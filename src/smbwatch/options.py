"""What the user chose for a run, handed from the command line down to the decoders.

A module of its own so that the CLI, the pipeline and the decoders can all import it without any
import pointing up. ``FileSink`` is how the decoders hand a completely seen file to whoever
stores it (``sinks.extract.FileExtractor``) without knowing anything of files on disk.
"""

from __future__ import annotations

import mmap
from typing import Final, Protocol

from smbwatch.events import SmbEvent

MIB: Final = 1 << 20
# The digests smbwatch can compute of a file, in the order of the events' fields (``--hash``).
HASHES: Final = ("sha256", "sha1", "md5")
DEFAULT_HASHES: Final = ("sha256",)
# File data as it is handed on, without a copy (the memory-mapped capture file included).
Bytes = bytes | bytearray | memoryview | mmap.mmap


class ExtractedFile(Protocol):
    """One file being stored as its data streams in (in order, from offset 0)."""

    def write(self, block: Bytes) -> None:
        """The next bytes of the file, in order; may raise OSError."""

    def commit(self, event: SmbEvent, first: tuple[int, int], last: tuple[int, int]) -> None:
        """The file is complete: ``event`` carries its hashes, size and where it was seen;
        ``first`` and ``last`` are the (time, frame) of its first and last data."""

    def discard(self) -> None:
        """The file will not be complete: forget what was written."""


class FileSink(Protocol):
    """Where completely seen files go (``--extract-files``)."""

    def begin(self) -> ExtractedFile | None:
        """A new file to stream into, or None when too many are in progress already."""


class Options:
    """Choices that change what the decoders do (the defaults are ``smbwatch events``')."""

    # Digests of every completely seen file, among ``HASHES`` (none: file data is skipped).
    hashes: tuple[str, ...]
    extract: FileSink | None  # store completely seen files (implies hashing)
    max_held_per_file: int  # data held out of order, per file and direction
    max_held_total: int  # ... and for all files of one capture
    zip_password: str | None  # of encrypted members of zip archives (--zip-password)

    def __init__(
        self,
        hashes: tuple[str, ...] = DEFAULT_HASHES,
        extract: FileSink | None = None,
        max_held_per_file: int = 8 * MIB,
        max_held_total: int = 64 * MIB,
        zip_password: str | None = None,
    ) -> None:
        self.hashes = hashes
        self.extract = extract
        self.max_held_per_file = max_held_per_file
        self.max_held_total = max_held_total
        self.zip_password = zip_password

    def __reduce__(self) -> tuple[type[Options], tuple[object, ...]]:
        """Pickled (to the tasks of a cluster) by its fields: compiled, it cannot be
        rebuilt attribute by attribute as pickle otherwise would."""
        fields = (self.max_held_per_file, self.max_held_total, self.zip_password)
        return Options, (self.hashes, self.extract, *fields)

    @property
    def hashing(self) -> bool:
        """Whether file data is read at all (rather than skipped by the TCP layer)."""
        return bool(self.hashes) or self.extract is not None
