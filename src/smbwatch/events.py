"""The event contract: one record type for every SMB event, from captures and from Windows logs.

Field names are the stable interface that users, their pipelines, the Sigma field mapping and the
tests rely on (DESIGN.md, "Event contract"). Add fields freely; never rename or drop one, and
document each new one in the README's field table.

``time`` is held as integer microseconds since the Unix epoch (UTC) so that events from every
source sort and subtract exactly; it is rendered as ISO 8601 with a ``Z`` only when serialised.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from operator import attrgetter
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class SmbEvent:
    """One SMB event. A field that does not apply stays ``None`` and is left out of the output."""

    time: int  # microseconds since the Unix epoch, UTC
    source: str  # "network" or "host"
    action: str
    source_format: str | None = None
    source_file: str | None = None
    source_ref: int | None = None  # frame number (network) or event record id (host)
    event_code: int | None = None  # host: Windows event id
    src_ip: str | None = None  # the client, always
    src_port: int | None = None
    dst_ip: str | None = None
    dst_port: int | None = None
    server: str | None = None
    user: str | None = None
    domain: str | None = None
    workstation: str | None = None
    client_version: str | None = (
        None  # logon: the client OS NTLMSSP names ("10.0 build 19041 rev 15")
    )
    session_id: int | str | None = None  # SMB SessionId (network) / logon id (host)
    tree_id: int | None = None
    file_id: str | None = None  # hex of the SMB2 FileId (persistent+volatile) or SMB1 FID
    dialect: str | None = None
    command: str | None = None  # protocol command name (MS-SMB2 "CREATE", MS-CIFS "NT_CREATE_ANDX")
    message_id: int | None = None
    share: str | None = None  # UNC of the share as seen: \\SERVER\C$
    share_name: str | None = None  # C$
    share_type: str | None = None  # disk, pipe, print
    path: str | None = None  # relative to the share, backslashes
    new_path: str | None = None  # rename target
    access_mask: int | None = None
    access_list: list[str] | None = None  # names of the access rights (WriteData, ...)
    share_access: int | None = None
    disposition: str | None = None  # FILE_OPEN, FILE_OVERWRITE_IF, ...
    create_options: int | None = None
    create_action: str | None = None  # FILE_OPENED, FILE_CREATED, ...
    delete_on_close: bool | None = None
    info_class: str | None = None  # set_info / query: FileRenameInformation, ...
    fsctl: str | None = None  # ioctl: FSCTL_PIPE_TRANSCEIVE, ...
    pattern: str | None = None  # query_directory search pattern
    status: str | None = None  # NT status name of the matching response
    bytes: int | None = None  # read/write length
    offset: int | None = None
    file_size: int | None = None
    bytes_seen: int | None = None  # how many distinct bytes of the file crossed the wire
    direction: str | None = None  # files: "upload" (client→server) or "download"
    pipe: str | None = None
    rpc_interface: str | None = None
    rpc_operation: str | None = None
    rpc_opnum: int | None = None
    rpc_status: str | None = None
    rpc_args: dict[str, Any] | None = None
    magic: str | None = None  # PE, ELF, script, ...
    sha256: str | None = None
    sha1: str | None = None
    md5: str | None = None
    encrypted: bool | None = None
    auth: str | None = None  # ntlmssp, kerberos, anonymous, guest, plaintext
    realm: str | None = None  # Kerberos realm
    spn: str | None = None  # Kerberos service principal name
    object_type: str | None = None  # host 5145: File, Directory, ...
    logon_type: int | None = None  # host 4624
    auth_package: str | None = None  # host 4624
    share_path: str | None = None  # host 5142-5144: local path of the share
    service_name: str | None = None  # host 7045/4697
    image_path: str | None = None
    start_type: str | None = None
    service_type: str | None = None
    account: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The event as the JSON object the contract describes (ISO time, no null fields)."""
        out = {n: v for n, v in zip(FIELD_NAMES, _all_fields(self), strict=True) if v is not None}
        out["time"] = format_time(self.time)
        return out


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(SmbEvent))
_all_fields = attrgetter(*FIELD_NAMES)


@lru_cache(maxsize=4096)
def _second(seconds: int) -> str:
    return (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")


def format_time(micros: int) -> str:
    """ISO 8601 UTC with microseconds and ``Z``, exact (no float rounding)."""
    seconds, fraction = divmod(micros, 1_000_000)
    return f"{_second(seconds)}.{fraction:06d}Z"


def parse_time(text: str) -> int:
    """Microseconds since the epoch from an ISO 8601 time (any offset; naive means UTC).

    Windows logs carry 100 ns precision (7 digits); the extra digit is truncated.
    """
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        frac, tail = rest[:digits], rest[digits:]
        text = f"{head}.{(frac + '000000')[:6]}{tail}"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def share_class(share_name: str | None) -> str | None:
    """``admin`` for ADMIN$ and drive shares (C$, D$...), ``ipc`` for IPC$, else ``disk``."""
    if not share_name:
        return None
    name = share_name.upper()
    if name == "IPC$":
        return "ipc"
    if name == "ADMIN$" or (len(name) == 2 and name[1] == "$" and name[0].isalpha()):
        return "admin"
    return "disk"
