"""Where an input's bytes come from: a file, or a member of a zip archive, gzip-compressed or not.

Decompression is where a small hostile input becomes a large one (a 200 KB gzip of zeros holds
200 MB; nested, far more). So every container is read in bounded chunks, never a whole member at
once, and what comes out of it is capped at ``MAX_RATIO`` times the bytes it occupies on disk
(the file, or the zip member as stored), from ``MIN_CAP`` on.

A container that cannot be opened (a wrong password, an unreadable archive) raises
``ContainerError``. Damage met while reading (a truncated or corrupt stream, the cap) ends the
content there, as if it ended, so that every reader keeps all that came before it; the reader
then reports ``damage(stream)`` as the input's damage.
Zip archives are read with pyzipper, which adds WinZip AES encryption to the standard library's
ZipCrypto: public collections of malware traffic ship zipped under a published password.
"""

from __future__ import annotations

import io
import os
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO, Final

GZIP_MAGIC: Final = b"\x1f\x8b"
ZIP_MAGIC: Final = b"PK\x03\x04"
MAX_RATIO: Final = 500  # a real EVTX compresses about 100 times, zeros about 1,000
MIN_CAP: Final = 64 << 20  # nothing smaller than this is ever refused
READ_SIZE: Final = 1 << 20  # compressed bytes taken at a time; as much comes out at most
_GZIP_WBITS: Final = 31  # zlib's "gzip header and trailer" mode
# Methods whose decompression zipfile bounds by the size asked for (bzip2 and LZMA it does not).
_ZIP_METHODS: Final = {0: "stored", 8: "deflate"}
# pyzipper (like zipfile) fails on hostile bytes in no single way: BadZipFile,
# NotImplementedError for a version it does not know (found by tests/test_fuzz.py),
# struct.error, UnicodeDecodeError, RuntimeError for a password, zlib.error... Whatever it
# raises costs that archive or member: it is called under ``except Exception``.


class ContainerError(OSError):
    """The container cannot be opened (one line, for the message)."""


@dataclass(frozen=True)
class InputFile:
    """One input: a file on disk, or the member ``member`` of the zip archive at ``path``."""

    path: str
    member: str | None = None
    password: str | None = None  # for encrypted zip members

    @property
    def name(self) -> str:
        """What events and messages call it: the path, or ``archive.zip/member``."""
        return self.path if self.member is None else f"{self.path}/{self.member}"

    def open(self) -> BinaryIO:
        """The input's content: decompressed if it is gzip, capped (see the module)."""
        return io.BufferedReader(self.open_raw(), READ_SIZE)

    def open_raw(self) -> io.RawIOBase:
        """``open`` without a buffer: each read returns what was decompressed so far, so that
        a reader losing the rest to damage keeps all that came before it."""
        stored, size = self._open_stored()
        try:
            gzip = _peek(stored, len(GZIP_MAGIC)) == GZIP_MAGIC
        except BaseException:
            stored.close()
            raise
        if gzip:
            return _Gunzip(stored, cap(size))
        return stored

    def plain_file(self) -> bool:
        """Whether the content is the file itself (to be memory-mapped, or named to a library)."""
        if self.member is not None:
            return False
        with open(self.path, "rb") as file:
            return file.read(len(GZIP_MAGIC)) != GZIP_MAGIC

    def _open_stored(self) -> tuple[io.RawIOBase, int]:
        """The bytes as stored (a zip member decompressed and capped) and their size on disk."""
        if self.member is None:
            return io.FileIO(self.path, "rb"), os.path.getsize(self.path)
        return _open_member(self)


def as_input(source: str | InputFile) -> InputFile:
    return source if isinstance(source, InputFile) else InputFile(source)


def cap(stored_size: int) -> int:
    """The most a container of ``stored_size`` bytes may give out."""
    return max(MIN_CAP, MAX_RATIO * stored_size)


def read_head(source: InputFile, size: int) -> tuple[bytes, str | None]:
    """The first ``size`` bytes of the content, and what stopped them short if it was damage
    (a truncated gzip stream is still sniffed from what it holds)."""
    parts: list[bytes] = []
    got = 0
    with source.open_raw() as raw:  # what cannot be opened at all raises
        while got < size and (chunk := raw.read(size - got)):
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts), damage(raw)


def is_zip(path: str) -> bool:
    try:
        with open(path, "rb") as file:
            return file.read(len(ZIP_MAGIC)) == ZIP_MAGIC
    except OSError:
        return False


def zip_members(path: str, password: str | None) -> list[InputFile]:
    """The files in a zip archive, in their order there (directories left out)."""
    import pyzipper  # here: it costs 0.05 s, paid only when a zip archive is met

    try:
        with pyzipper.AESZipFile(path) as archive:
            names = [info.filename for info in archive.infolist() if not info.is_dir()]
    except Exception as error:  # any failure of pyzipper's (_ZIP_METHODS)
        raise ContainerError(f"unreadable zip archive ({error})") from None
    return [InputFile(path, name, password) for name in names]


def _open_member(source: InputFile) -> tuple[io.RawIOBase, int]:
    import pyzipper

    archive = None
    try:
        archive = pyzipper.AESZipFile(source.path)
        info = archive.getinfo(source.member)
        method = _ZIP_METHODS.get(info.compress_type)
        if method is None:
            raise ContainerError(
                f"compression method {info.compress_type} is not read"
                f" (only {' and '.join(_ZIP_METHODS.values())})"
            )
        encrypted = bool(info.flag_bits & 0x1)
        if encrypted and source.password is None:
            raise ContainerError("encrypted: give its password (--zip-password)")
        password = source.password.encode() if encrypted and source.password else None
        member = archive.open(info, pwd=password)
    except ContainerError:
        if archive is not None:
            archive.close()
        raise
    except Exception as error:  # any failure of pyzipper's (_ZIP_METHODS)
        if archive is not None:
            archive.close()
        raise ContainerError(_zip_problem(error)) from None
    return _Member(archive, member, cap(info.compress_size)), info.compress_size


def _zip_problem(error: BaseException) -> str:
    text = str(error)
    if "password" in text.lower():
        return "wrong password (--zip-password)"
    return f"unreadable zip member ({text})"


def _peek(stream: io.RawIOBase, size: int) -> bytes:
    """The first bytes of a stream just opened, which is then read again from its start."""
    if isinstance(stream, io.FileIO):
        head = stream.read(size) or b""
        stream.seek(0)
        return head
    assert isinstance(stream, _Member)
    return stream.peek(size)


class _Capped(io.RawIOBase):
    """A decompressed stream that counts what comes out and ends past ``limit``. Damage (a
    cut, corruption, the limit) ends it too, as the end of the data: a reader takes all that
    came before, in whatever pieces it reads (a buffered read raising midway would lose the
    rest of its piece), then asks ``damage`` what happened."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.produced = 0
        self.problem: str | None = None

    def readable(self) -> bool:
        return True

    @property
    def damage(self) -> str | None:
        return self.problem

    def _fail(self, problem: str) -> int:
        """End the stream here, because of ``problem`` (the first one is kept)."""
        self.problem = self.problem or problem
        return 0

    def _give(self, data: bytes, buffer: memoryview) -> int:
        if self.produced + len(data) > self.limit:
            return self._fail(
                f"decompression stopped after {self.limit >> 20} MiB, {MAX_RATIO} times its"
                " compressed size (a decompression bomb?)"
            )
        self.produced += len(data)
        buffer[: len(data)] = data
        return len(data)


class _Member(_Capped):
    """A zip member's content, decompressed by zipfile a read's worth at a time."""

    def __init__(self, archive: Any, member: BinaryIO, limit: int) -> None:
        super().__init__(limit)
        self.archive = archive
        self.member = member
        self.head = b""  # bytes peeked at, to be read again first

    def peek(self, size: int) -> bytes:
        while len(self.head) < size and (more := self._read(size - len(self.head))):
            self.head += more
        return self.head[:size]

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.head:
            data, self.head = self.head[: len(buffer)], self.head[len(buffer) :]
        else:
            data = self._read(len(buffer))
        return self._give(data, buffer) if data else 0

    def _read(self, size: int) -> bytes:
        if self.problem is not None:
            return b""
        try:
            return self.member.read(min(size, READ_SIZE))
        except Exception as error:  # any failure of pyzipper's (_ZIP_METHODS)
            self._fail(_zip_problem(error))
            return b""

    def close(self) -> None:
        if not self.closed:
            self.member.close()
            self.archive.close()
        super().close()


class _Gunzip(_Capped):
    """A gzip stream (members one after the other) decompressed at most ``READ_SIZE`` at a time,
    also when damaged: what comes before a cut or corruption is returned first."""

    def __init__(self, stored: io.RawIOBase, limit: int) -> None:
        super().__init__(limit)
        self.stored = stored
        self.inflater = zlib.decompressobj(wbits=_GZIP_WBITS)
        self.pending = b""  # compressed bytes not yet given to the inflater
        self.ended = False

    @property
    def damage(self) -> str | None:
        return damage(self.stored) or self.problem  # the zip member's own, first

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self.ended and self.problem is None:
            if self.inflater.eof:
                self._next_member()
                continue
            if not self.pending:
                self.pending = self.stored.read(READ_SIZE) or b""
                if not self.pending:
                    return self._fail("gzip stream ends early (truncated)")
            try:
                data = self.inflater.decompress(self.pending, min(len(buffer), READ_SIZE))
            except zlib.error as error:
                return self._fail(f"corrupt gzip stream ({error})")
            self.pending = self.inflater.unconsumed_tail
            if data:
                return self._give(data, buffer)
        return 0

    def _next_member(self) -> None:
        """After a member's end: another member, or the end of the stream (zero padding too)."""
        rest = self.inflater.unused_data or self.stored.read(READ_SIZE) or b""
        if not rest.strip(b"\x00"):
            self.ended = True
        elif rest.startswith(GZIP_MAGIC):
            self.inflater = zlib.decompressobj(wbits=_GZIP_WBITS)
            self.pending = rest
        else:
            self._fail("data after the gzip stream is not gzip")

    def close(self) -> None:
        if not self.closed:
            self.stored.close()
        super().close()


def damage(stream: object) -> str | None:
    """What ended a stream of ``InputFile.open`` or ``open_raw`` early, if anything did."""
    raw = getattr(stream, "raw", stream)  # through a BufferedReader
    return raw.damage if isinstance(raw, _Capped) else None
