"""``file_key``: one id per opened file instance, to join a file's open, reads, writes and close.

A FileId alone does not name a file: servers reuse them after a close, and two connections can
hold the same one. The open that returned the FileId does: its connection (``conn_id``), the
FileId and the open's MessageId are what every sensor on that connection sees alike, so the key
is a hash of the three. Events that use a FileId whose open the capture did not show (it began
later) get a key of the connection and FileId alone.

This runs over the events of one capture in the order they complete (a file's open completes
before any use of the FileId it returns), after the decoders, which know nothing of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Final

from smbwatch.events import SmbEvent

# Commands whose response hands out a FileId (MS-SMB2 CREATE; MS-CIFS NT_CREATE_ANDX,
# OPEN_ANDX). A CREATE reported twice (a delete-on-close create is also its delete) keeps one key.
OPEN_COMMANDS: Final = frozenset({"CREATE", "SMB_COM_NT_CREATE_ANDX", "SMB_COM_OPEN_ANDX"})
MAX_OPEN_FILES: Final = 65536  # FileIds remembered per capture (bounded against hostile input)


def file_key(conn_id: str, file_id: str, message_id: int | None) -> str:
    """The key of the file instance opened on ``conn_id`` by ``message_id`` (None: unknown)."""
    opener = "" if message_id is None else str(message_id)
    digest = hashlib.blake2b(f"{conn_id}|{file_id}|{opener}".encode(), digest_size=8)
    return "F" + digest.hexdigest()


class FileKeys:
    """The current instance of each FileId of each connection of one capture."""

    def __init__(self) -> None:
        self.current: dict[tuple[str, str], str] = {}

    def assign(self, event: SmbEvent) -> None:
        """Set ``event.file_key`` when it has a FileId on a known connection."""
        conn_id, file_id = event.conn_id, event.file_id
        if conn_id is None or file_id is None:
            return
        where = (conn_id, file_id)
        if event.command in OPEN_COMMANDS:
            key = file_key(conn_id, file_id, event.message_id)
            if len(self.current) >= MAX_OPEN_FILES and where not in self.current:
                self.current.clear()
            self.current[where] = key
        else:
            found = self.current.get(where)
            key = found if found is not None else file_key(conn_id, file_id, None)
        event.file_key = key


def with_file_keys(events: Iterable[SmbEvent]) -> Iterator[SmbEvent]:
    """The events of one capture, each with its ``file_key``."""
    keys = FileKeys()
    for event in events:
        keys.assign(event)
        yield event
