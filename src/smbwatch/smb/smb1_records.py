"""SMB1 (MS-CIFS, MS-SMB) message records: pure parsers over the bytes of one SMB1 message.

Every offset is relative to the start of the SMB header (``\\xffSMB``), as in the protocol, so
the Unicode rule "strings start at an even offset from the header" holds directly. Only the
fields smbwatch reports are read. A field that lies beyond the bytes given raises ``ValueError``;
the decoder (``smb1.py``) turns that into a counted warning.
"""

from __future__ import annotations

import struct
from typing import Final

from smbwatch.ntstatus import nt_status_name
from smbwatch.smb.fscc import FILE_OPENED
from smbwatch.utf16 import utf16le

PROTOCOL_ID: Final = b"\xffSMB"
HEADER_SIZE: Final = 32
MAX_ANDX_CHAIN: Final = 8  # real chains have two or three commands
MAX_DIALECTS: Final = 64

# Commands (MS-CIFS 2.2.2.1) smbwatch decodes, and the names of all the others.
SMB_COM_CREATE_DIRECTORY: Final = 0x00
SMB_COM_DELETE_DIRECTORY: Final = 0x01
SMB_COM_CLOSE: Final = 0x04
SMB_COM_DELETE: Final = 0x06
SMB_COM_RENAME: Final = 0x07
SMB_COM_TRANSACTION: Final = 0x25
SMB_COM_TRANSACTION_SECONDARY: Final = 0x26
SMB_COM_OPEN_ANDX: Final = 0x2D
SMB_COM_READ_ANDX: Final = 0x2E
SMB_COM_WRITE_ANDX: Final = 0x2F
SMB_COM_TRANSACTION2: Final = 0x32
SMB_COM_TRANSACTION2_SECONDARY: Final = 0x33
SMB_COM_TREE_DISCONNECT: Final = 0x71
SMB_COM_NEGOTIATE: Final = 0x72
SMB_COM_SESSION_SETUP_ANDX: Final = 0x73
SMB_COM_LOGOFF_ANDX: Final = 0x74
SMB_COM_TREE_CONNECT_ANDX: Final = 0x75
SMB_COM_NT_TRANSACT: Final = 0xA0
SMB_COM_NT_TRANSACT_SECONDARY: Final = 0xA1
SMB_COM_NT_CREATE_ANDX: Final = 0xA2
SMB_COM_NT_RENAME: Final = 0xA5
SMB_COM_NO_ANDX_COMMAND: Final = 0xFF

COMMAND_NAMES: dict[int, str] = {
    0x00: "SMB_COM_CREATE_DIRECTORY",
    0x01: "SMB_COM_DELETE_DIRECTORY",
    0x02: "SMB_COM_OPEN",
    0x03: "SMB_COM_CREATE",
    0x04: "SMB_COM_CLOSE",
    0x05: "SMB_COM_FLUSH",
    0x06: "SMB_COM_DELETE",
    0x07: "SMB_COM_RENAME",
    0x08: "SMB_COM_QUERY_INFORMATION",
    0x09: "SMB_COM_SET_INFORMATION",
    0x0A: "SMB_COM_READ",
    0x0B: "SMB_COM_WRITE",
    0x0C: "SMB_COM_LOCK_BYTE_RANGE",
    0x0D: "SMB_COM_UNLOCK_BYTE_RANGE",
    0x0E: "SMB_COM_CREATE_TEMPORARY",
    0x0F: "SMB_COM_CREATE_NEW",
    0x10: "SMB_COM_CHECK_DIRECTORY",
    0x11: "SMB_COM_PROCESS_EXIT",
    0x12: "SMB_COM_SEEK",
    0x13: "SMB_COM_LOCK_AND_READ",
    0x14: "SMB_COM_WRITE_AND_UNLOCK",
    0x1A: "SMB_COM_READ_RAW",
    0x1B: "SMB_COM_READ_MPX",
    0x1C: "SMB_COM_READ_MPX_SECONDARY",
    0x1D: "SMB_COM_WRITE_RAW",
    0x1E: "SMB_COM_WRITE_MPX",
    0x1F: "SMB_COM_WRITE_MPX_SECONDARY",
    0x20: "SMB_COM_WRITE_COMPLETE",
    0x21: "SMB_COM_QUERY_SERVER",
    0x22: "SMB_COM_SET_INFORMATION2",
    0x23: "SMB_COM_QUERY_INFORMATION2",
    0x24: "SMB_COM_LOCKING_ANDX",
    0x25: "SMB_COM_TRANSACTION",
    0x26: "SMB_COM_TRANSACTION_SECONDARY",
    0x27: "SMB_COM_IOCTL",
    0x28: "SMB_COM_IOCTL_SECONDARY",
    0x29: "SMB_COM_COPY",
    0x2A: "SMB_COM_MOVE",
    0x2B: "SMB_COM_ECHO",
    0x2C: "SMB_COM_WRITE_AND_CLOSE",
    0x2D: "SMB_COM_OPEN_ANDX",
    0x2E: "SMB_COM_READ_ANDX",
    0x2F: "SMB_COM_WRITE_ANDX",
    0x30: "SMB_COM_NEW_FILE_SIZE",
    0x31: "SMB_COM_CLOSE_AND_TREE_DISC",
    0x32: "SMB_COM_TRANSACTION2",
    0x33: "SMB_COM_TRANSACTION2_SECONDARY",
    0x34: "SMB_COM_FIND_CLOSE2",
    0x35: "SMB_COM_FIND_NOTIFY_CLOSE",
    0x70: "SMB_COM_TREE_CONNECT",
    0x71: "SMB_COM_TREE_DISCONNECT",
    0x72: "SMB_COM_NEGOTIATE",
    0x73: "SMB_COM_SESSION_SETUP_ANDX",
    0x74: "SMB_COM_LOGOFF_ANDX",
    0x75: "SMB_COM_TREE_CONNECT_ANDX",
    0x7E: "SMB_COM_SECURITY_PACKAGE_ANDX",
    0x80: "SMB_COM_QUERY_INFORMATION_DISK",
    0x81: "SMB_COM_SEARCH",
    0x82: "SMB_COM_FIND",
    0x83: "SMB_COM_FIND_UNIQUE",
    0x84: "SMB_COM_FIND_CLOSE",
    0xA0: "SMB_COM_NT_TRANSACT",
    0xA1: "SMB_COM_NT_TRANSACT_SECONDARY",
    0xA2: "SMB_COM_NT_CREATE_ANDX",
    0xA4: "SMB_COM_NT_CANCEL",
    0xA5: "SMB_COM_NT_RENAME",
    0xC0: "SMB_COM_OPEN_PRINT_FILE",
    0xC1: "SMB_COM_WRITE_PRINT_FILE",
    0xC2: "SMB_COM_CLOSE_PRINT_FILE",
    0xC3: "SMB_COM_GET_PRINT_QUEUE",
    0xD8: "SMB_COM_READ_BULK",
    0xD9: "SMB_COM_WRITE_BULK",
    0xDA: "SMB_COM_WRITE_BULK_DATA",
    0xFE: "SMB_COM_INVALID",
    0xFF: "SMB_COM_NO_ANDX_COMMAND",
}

# Commands whose parameter words start with AndXCommand, AndXReserved, AndXOffset.
ANDX_COMMANDS: Final = frozenset((0x24, 0x2D, 0x2E, 0x2F, 0x73, 0x74, 0x75, 0x7E, 0xA2))

# Header flags (MS-CIFS 2.2.3.1)
SMB_FLAGS_REPLY: Final = 0x80
SMB_FLAGS2_NT_STATUS: Final = 0x4000
SMB_FLAGS2_UNICODE: Final = 0x8000

# NEGOTIATE response SecurityMode; SESSION_SETUP_ANDX response Action
NEGOTIATE_ENCRYPT_PASSWORDS: Final = 0x02
SMB_SETUP_GUEST: Final = 0x0001
NT_LM_0_12: Final = "NT LM 0.12"
DIALECT_SYNONYMS: Final = {"NT LANMAN 1.0": NT_LM_0_12}  # MS-CIFS 1.7: two names of one dialect
NT_LM_RESPONSE_WORDS: Final = (
    17  # the NEGOTIATE response of the NT LAN Manager dialect has 17 words
)

# Sub-commands of TRANSACTION (Setup[0]), TRANSACTION2 (Setup[0]) and NT_TRANSACT (Function)
TRANS_TRANSACT_NMPIPE: Final = 0x0026
TRANS2_FIND_FIRST2: Final = 0x0001
TRANS2_FIND_NEXT2: Final = 0x0002
TRANS2_QUERY_FS_INFORMATION: Final = 0x0003
TRANS2_QUERY_PATH_INFORMATION: Final = 0x0005
TRANS2_SET_PATH_INFORMATION: Final = 0x0006
TRANS2_QUERY_FILE_INFORMATION: Final = 0x0007
TRANS2_SET_FILE_INFORMATION: Final = 0x0008
NT_TRANSACT_CREATE: Final = 0x0001

# WRITE_ANDX WriteMode bits that put a 2-byte message length before named-pipe data
WRITE_RAW_MODE: Final = 0x0004
WRITE_MESSAGE_START: Final = 0x0008

# NT_RENAME InformationLevel (MS-CIFS 2.2.4.66.1)
NT_RENAME_LEVELS: Final = {
    0x0101: "SMB_NT_RENAME_SET_LINK_INFO",
    0x0102: "SMB_NT_RENAME_MOVE_FILE",
    0x0103: "SMB_NT_RENAME_RENAME_FILE",
}

FILE_OPEN: Final = 1  # CreateDisposition

# Information levels (MS-CIFS 2.2.2.3); a level from 1000 on passes an MS-FSCC class through.
SMB_INFO_PASSTHROUGH: Final = 1000
SMB_SET_FILE_DISPOSITION_INFO: Final = 0x0102
FIND_LEVELS: Final = {
    0x0001: "SMB_INFO_STANDARD",
    0x0002: "SMB_INFO_QUERY_EA_SIZE",
    0x0003: "SMB_INFO_QUERY_EAS_FROM_LIST",
    0x0101: "SMB_FIND_FILE_DIRECTORY_INFO",
    0x0102: "SMB_FIND_FILE_FULL_DIRECTORY_INFO",
    0x0103: "SMB_FIND_FILE_NAMES_INFO",
    0x0104: "SMB_FIND_FILE_BOTH_DIRECTORY_INFO",
    0x0105: "SMB_FIND_FILE_ID_FULL_DIRECTORY_INFO",
    0x0106: "SMB_FIND_FILE_ID_BOTH_DIRECTORY_INFO",
    0x0202: "SMB_FIND_FILE_UNIX",
    0x020B: "SMB_FIND_FILE_UNIX_INFO2",
}
QUERY_LEVELS: Final = {  # QUERY_PATH_INFORMATION, QUERY_FILE_INFORMATION (2.2.2.3.3)
    0x0001: "SMB_INFO_STANDARD",
    0x0002: "SMB_INFO_QUERY_EA_SIZE",
    0x0003: "SMB_INFO_QUERY_EAS_FROM_LIST",
    0x0004: "SMB_INFO_QUERY_ALL_EAS",
    0x0006: "SMB_INFO_IS_NAME_VALID",
    0x0101: "SMB_QUERY_FILE_BASIC_INFO",
    0x0102: "SMB_QUERY_FILE_STANDARD_INFO",
    0x0103: "SMB_QUERY_FILE_EA_INFO",
    0x0104: "SMB_QUERY_FILE_NAME_INFO",
    0x0107: "SMB_QUERY_FILE_ALL_INFO",
    0x0108: "SMB_QUERY_FILE_ALT_NAME_INFO",
    0x0109: "SMB_QUERY_FILE_STREAM_INFO",
    0x010B: "SMB_QUERY_FILE_COMPRESSION_INFO",
    0x0200: "SMB_QUERY_FILE_UNIX_BASIC",
    0x0201: "SMB_QUERY_FILE_UNIX_LINK",
    0x020B: "SMB_QUERY_FILE_UNIX_INFO2",
}
QUERY_FS_LEVELS: Final = {  # QUERY_FS_INFORMATION (2.2.2.3.2)
    0x0001: "SMB_INFO_ALLOCATION",
    0x0002: "SMB_INFO_VOLUME",
    0x0102: "SMB_QUERY_FS_VOLUME_INFO",
    0x0103: "SMB_QUERY_FS_SIZE_INFO",
    0x0104: "SMB_QUERY_FS_DEVICE_INFO",
    0x0105: "SMB_QUERY_FS_ATTRIBUTE_INFO",
}
SET_LEVELS: Final = {
    0x0001: "SMB_INFO_STANDARD",
    0x0002: "SMB_INFO_SET_EAS",
    0x0101: "SMB_SET_FILE_BASIC_INFO",
    0x0102: "SMB_SET_FILE_DISPOSITION_INFO",
    0x0103: "SMB_SET_FILE_ALLOCATION_INFO",
    0x0104: "SMB_SET_FILE_END_OF_FILE_INFO",
    0x0200: "SMB_SET_FILE_UNIX_BASIC",
    0x0201: "SMB_SET_FILE_UNIX_LINK",
    0x0203: "SMB_SET_FILE_UNIX_HLINK",
    0x020B: "SMB_SET_FILE_UNIX_INFO2",
}

# The Service of TREE_CONNECT_ANDX (MS-CIFS 2.2.4.55) as the event contract's share_type.
SERVICE_SHARE_TYPES: Final = {"A:": "disk", "IPC": "pipe", "LPT1:": "print", "COMM": "comm"}

# ResourceType of NT_CREATE_ANDX / OPEN_ANDX responses that are named pipes
FILE_TYPE_BYTE_MODE_PIPE: Final = 1
FILE_TYPE_MESSAGE_MODE_PIPE: Final = 2

# SMB error classes and codes (MS-CIFS 2.2.2.4), for servers that answer without NT status.
_ERROR_CLASSES: Final = {0x01: "DOS", 0x02: "SRV", 0x03: "HRD", 0xFF: "CMD"}
_ERRDOS: Final = {
    1: "BADFUNC", 2: "BADFILE", 3: "BADPATH", 4: "NOFIDS", 5: "NOACCESS", 6: "BADFID",
    7: "BADMCB", 8: "NOMEM", 9: "BADMEM", 10: "BADENV", 11: "BADFORMAT", 12: "BADACCESS",
    13: "BADDATA", 15: "BADDRIVE", 16: "REMCD", 17: "DIFFDEVICE", 18: "NOFILES", 31: "GENERAL",
    32: "BADSHARE", 33: "LOCK", 38: "EOF", 50: "UNSUP", 80: "FILEXISTS", 87: "INVALIDPARAM",
    123: "INVALIDNAME", 124: "UNKNOWNLEVEL", 145: "DIRNOTEMPTY", 158: "NOTLOCKED",
    173: "CANCELVIOLATION", 174: "ATOMICLOCKSNOTSUPPORTED", 183: "ALREADYEXISTS",
    230: "BADPIPE", 231: "PIPEBUSY", 232: "PIPECLOSING", 233: "NOTCONNECTED", 234: "MOREDATA",
    255: "BADEALIST", 282: "EASNOTSUPPORTED", 1022: "NOTIFYENUMDIR",
}  # fmt: skip
_ERRSRV: Final = {
    1: "ERROR", 2: "BADPW", 3: "BADPATH", 4: "ACCESS", 5: "INVTID", 6: "INVNETNAME",
    7: "INVDEVICE", 49: "QFULL", 50: "QTOOBIG", 51: "QEOF", 52: "INVPFID", 64: "SMBCMD",
    65: "SRVERROR", 67: "FILESPECS", 69: "BADPERMITS", 71: "SETATTRMODE", 81: "PAUSED",
    82: "MSGOFF", 83: "NOROOM", 87: "RMUNS", 88: "TIMEOUT", 89: "NORESOURCE",
    90: "TOOMANYUIDS", 91: "BADUID", 250: "USEMPX", 251: "USESTD", 252: "CONTMPX",
    2239: "ACCOUNTEXPIRED", 2240: "BADCLIENT", 2241: "BADLOGONTIME", 2242: "PASSWORDEXPIRED",
    65535: "NOSUPPORT",
}  # fmt: skip
_ERRHRD: Final = {
    19: "NOWRITE", 20: "BADUNIT", 21: "NOTREADY", 22: "BADCMD", 23: "DATA", 24: "BADREQ",
    25: "SEEK", 26: "BADMEDIA", 27: "BADSECTOR", 28: "NOPAPER", 29: "WRITE", 30: "READ",
    31: "GENERAL", 32: "BADSHARE", 33: "LOCK", 34: "WRONGDISK", 35: "FCBUNAVAIL",
    36: "SHAREBUFEXC", 39: "DISKFULL",
}  # fmt: skip
_ERROR_CODES: Final = {0x01: _ERRDOS, 0x02: _ERRSRV, 0x03: _ERRHRD}


class Header:
    """The fields of the SMB header (MS-CIFS 2.2.3.1) that identify and qualify a message.
    (A plain class, as the other records made for every message: compiled, a dataclass keeps
    an interpreted ``__init__``.)"""

    __slots__ = ("command", "status", "flags", "flags2", "pid", "tid", "uid", "mid")

    def __init__(
        self,
        command: int,
        status: int,  # NT status, or ErrorClass | ErrorCode << 16 without SMB_FLAGS2_NT_STATUS
        flags: int,
        flags2: int,
        pid: int,  # PIDHigh << 16 | PIDLow
        tid: int,
        uid: int,
        mid: int,
    ) -> None:
        self.command = command
        self.status = status
        self.flags = flags
        self.flags2 = flags2
        self.pid = pid
        self.tid = tid
        self.uid = uid
        self.mid = mid

    @property
    def is_reply(self) -> bool:
        return bool(self.flags & SMB_FLAGS_REPLY)

    @property
    def unicode(self) -> bool:
        return bool(self.flags2 & SMB_FLAGS2_UNICODE)


class Block:
    """One command of a message: where its parameter words and its bytes lie."""

    __slots__ = ("command", "words", "word_count", "data", "byte_count")

    def __init__(
        self,
        command: int,
        words: int,  # offset of the first parameter word
        word_count: int,
        data: int,  # offset of the first byte of the Bytes block
        byte_count: int,
    ) -> None:
        self.command = command
        self.words = words
        self.word_count = word_count
        self.data = data
        self.byte_count = byte_count

    @property
    def end(self) -> int:
        return self.data + self.byte_count


# Protocol, Command, Status, Flags, Flags2, PIDHigh, SecurityFeatures, Reserved, TID, PIDLow,
# UID, MID
_HEADER: Final = struct.Struct("<4sBIBHH8x2xHHHH")


def parse_header(msg: bytes) -> Header:
    """The SMB1 header at the start of ``msg``."""
    if len(msg) < HEADER_SIZE or not msg.startswith(PROTOCOL_ID):
        raise ValueError("not an SMB1 header")
    pid_high: int
    pid_low: int
    _, command, status, flags, flags2, pid_high, tid, pid_low, uid, mid = _HEADER.unpack_from(msg)
    return Header(command, status, flags, flags2, pid_high << 16 | pid_low, tid, uid, mid)


def status_name(header: Header) -> str:
    """The NT status name, or ``CLASS_CODE`` (``SRV_BADUID``) for an SMB error class and code."""
    if header.flags2 & SMB_FLAGS2_NT_STATUS:
        return nt_status_name(header.status)
    error_class, code = header.status & 0xFF, header.status >> 16
    if error_class == 0:
        return nt_status_name(0)
    name = _ERROR_CODES.get(error_class, {}).get(code, f"0x{code:04X}")
    return f"{_ERROR_CLASSES.get(error_class, f'0x{error_class:02X}')}_{name}"


def command_name(command: int) -> str:
    return COMMAND_NAMES.get(command, f"SMB_COM_0x{command:02X}")


def parse_chain(msg: bytes, command: int) -> tuple[list[Block], str | None]:
    """The commands of a message, following AndX offsets; and why the chain broke, if it did.

    Offsets must strictly increase and stay inside ``msg`` and the chain is bounded, so a loop
    or an offset out of range ends the chain after the commands read so far.
    """
    blocks: list[Block] = []
    pos = HEADER_SIZE
    while True:
        if pos >= len(msg):
            return blocks, f"{command_name(command)}: parameter block beyond the message"
        word_count = msg[pos]
        count_at = pos + 1 + 2 * word_count
        if count_at + 2 > len(msg):
            return blocks, f"{command_name(command)}: {word_count} words beyond the message"
        byte_count = int.from_bytes(msg[count_at : count_at + 2], "little")
        blocks.append(Block(command, pos + 1, word_count, count_at + 2, byte_count))
        if command not in ANDX_COMMANDS or word_count < 2:
            return blocks, None
        command, andx_offset = msg[pos + 1], int.from_bytes(msg[pos + 3 : pos + 5], "little")
        if command == SMB_COM_NO_ANDX_COMMAND:
            return blocks, None
        if andx_offset <= pos:
            return blocks, f"AndX offset {andx_offset} does not move past {pos}"
        if len(blocks) >= MAX_ANDX_CHAIN:
            return blocks, f"AndX chain longer than {MAX_ANDX_CHAIN}"
        pos = andx_offset


def andx_next(msg: bytes, block: Block) -> int:
    """The AndXCommand of an AndX block (``SMB_COM_NO_ANDX_COMMAND`` at the end of a chain)."""
    return msg[block.words] if block.word_count >= 2 else SMB_COM_NO_ANDX_COMMAND


def _words(msg: bytes, block: Block, layout: struct.Struct) -> tuple:
    """Unpack the start of a block's parameter words; too few words is malformed."""
    if block.word_count * 2 < layout.size:
        raise ValueError(f"{command_name(block.command)}: {block.word_count} words, too few")
    return layout.unpack_from(msg, block.words)


def _slice(buf: bytes, offset: int, length: int, what: str) -> bytes:
    if offset < 0 or length < 0 or offset + length > len(buf):
        raise ValueError(f"{what} at {offset}+{length} beyond {len(buf)} bytes")
    return buf[offset : offset + length]


def smb_string(buf: bytes, offset: int, end: int, unicode: bool) -> tuple[str, int]:
    """A null-terminated string at ``offset`` (Unicode: from the next even offset of ``buf``)
    that ends before ``end``; and the offset after its terminator. An unterminated string
    runs to ``end``."""
    end = min(end, len(buf))
    if not unicode:
        nul = buf.find(b"\0", offset, end)
        stop = end if nul < 0 else nul
        return buf[offset:stop].decode("cp437"), (end if nul < 0 else nul + 1)
    offset += offset & 1
    search = offset
    while True:
        nul = buf.find(b"\0\0", search, end)
        if nul < 0:
            stop = end - ((end - offset) & 1)
            return utf16le(buf[offset:stop]), end
        if not (nul - offset) & 1:
            return utf16le(buf[offset:nul]), nul + 2
        search = nul + 1


def _buffer_format_string(msg: bytes, offset: int, end: int, unicode: bool) -> tuple[str, int]:
    """A string preceded by its BufferFormat byte 0x04 (SMB_STRING in DELETE and RENAME)."""
    if offset >= end or msg[offset] != 0x04:
        raise ValueError(f"no BufferFormat 0x04 at {offset}")
    return smb_string(msg, offset + 1, end, unicode)


def strip_path(name: str) -> str:
    """A path as Windows logs it relative to the share: no leading backslash, no trailing NUL."""
    return name.rstrip("\0").lstrip("\\")


_U16: Final = struct.Struct("<H")
_ANDX_U16: Final = struct.Struct("<4xH")  # AndX, then the first word after it
_NT_RENAME: Final = struct.Struct("<2xH")  # SearchAttributes, InformationLevel

# --- NEGOTIATE ---------------------------------------------------------------------------------


def negotiate_dialects(msg: bytes, block: Block) -> list[str]:
    """The dialect strings a client offers, in order (the response picks one by index)."""
    raw = msg[block.data : block.end]
    names = [part[1:].decode("cp437") for part in raw.split(b"\0") if part[:1] == b"\x02"]
    return names[:MAX_DIALECTS]


class NegotiateResponse:
    dialect_index: int
    security_mode: int | None  # None before NT LM 0.12

    def __init__(self, dialect_index: int, security_mode: int | None) -> None:
        self.dialect_index = dialect_index
        self.security_mode = security_mode


def parse_negotiate_response(msg: bytes, block: Block) -> NegotiateResponse:
    (index,) = _words(msg, block, _U16)
    mode = msg[block.words + 2] if block.word_count >= NT_LM_RESPONSE_WORDS else None
    return NegotiateResponse(index, mode)


# --- SESSION_SETUP_ANDX ------------------------------------------------------------------------

# AndX, MaxBufferSize, MaxMpxCount, VcNumber, SessionKey, then per form:
_SETUP_EXTENDED: Final = struct.Struct("<4xHHHIH4xI")  # SecurityBlobLength, Reserved, Capabilities
_SETUP_NT: Final = struct.Struct("<4xHHHIHH4xI")  # OEMPasswordLen, UnicodePasswordLen, ...
_SETUP_LANMAN: Final = struct.Struct("<4xHHHIH4x")  # PasswordLength, Reserved


class SessionSetupRequest:
    security_blob: bytes | None  # extended security (12 words)
    account: str | None  # the other forms: AccountName, PrimaryDomain, password lengths
    primary_domain: str | None
    password_lengths: tuple[int, ...]

    def __init__(
        self,
        security_blob: bytes | None,
        account: str | None,
        primary_domain: str | None,
        password_lengths: tuple[int, ...] = (),
    ) -> None:
        self.security_blob = security_blob
        self.account = account
        self.primary_domain = primary_domain
        self.password_lengths = password_lengths


def parse_session_setup_request(msg: bytes, block: Block, unicode: bool) -> SessionSetupRequest:
    """Extended security (12 words: a security blob) or NT LM 0.12 / LANMAN 1.0 account names."""
    if block.word_count == 12:
        blob_length = _words(msg, block, _SETUP_EXTENDED)[4]
        return SessionSetupRequest(_in_bytes(msg, block, blob_length, "SecurityBlob"), None, None)
    if block.word_count == 13:
        lengths = _words(msg, block, _SETUP_NT)[4:6]
    else:
        lengths = _words(msg, block, _SETUP_LANMAN)[4:5]
    offset = block.data + sum(lengths)
    if offset > block.end:
        raise ValueError("SESSION_SETUP_ANDX passwords beyond the bytes")
    account, offset = smb_string(msg, offset, block.end, unicode)
    domain, _ = smb_string(msg, offset, block.end, unicode)
    return SessionSetupRequest(None, account, domain, tuple(lengths))


def parse_session_setup_response(msg: bytes, block: Block) -> tuple[int, bytes]:
    """The response's Action (SMB_SETUP_GUEST: logged on as guest) and its security blob."""
    if block.word_count == 4:
        action, blob_length = _words(msg, block, _SETUP_EXTENDED_RESPONSE)
        return action, _in_bytes(msg, block, blob_length, "SecurityBlob")
    return _words(msg, block, _ANDX_U16)[0], b""


_SETUP_EXTENDED_RESPONSE: Final = struct.Struct("<4xHH")  # Action, SecurityBlobLength


def _in_bytes(msg: bytes, block: Block, length: int, what: str) -> bytes:
    """The first ``length`` bytes of a block's Bytes."""
    if length > block.byte_count:
        raise ValueError(f"{what} of {length} bytes beyond a {block.byte_count}-byte block")
    return _slice(msg, block.data, length, what)


# --- TREE_CONNECT_ANDX -------------------------------------------------------------------------

_TREE_CONNECT: Final = struct.Struct("<4xHH")  # Flags, PasswordLength


def parse_tree_connect_request(msg: bytes, block: Block, unicode: bool) -> tuple[str, str]:
    """The share's UNC path and the Service asked for (``?????``: any)."""
    password_length = _words(msg, block, _TREE_CONNECT)[1]
    offset = block.data + password_length
    if offset > block.end:
        raise ValueError("TREE_CONNECT_ANDX password beyond the bytes")
    path, offset = smb_string(msg, offset, block.end, unicode)
    service, _ = smb_string(msg, offset, block.end, False)
    return path, service


def parse_tree_connect_response(msg: bytes, block: Block) -> str:
    """The Service of the connected share (always OEM): ``A:``, ``IPC``, ``LPT1:``, ``COMM``."""
    return smb_string(msg, block.data, block.end, False)[0]


# --- opening files: NT_CREATE_ANDX, NT_TRANSACT_CREATE, OPEN_ANDX --------------------------------


class CreateRequest:
    name: str
    root_fid: int
    access_mask: int
    share_access: int | None
    disposition: int  # CreateDisposition (MS-FSCC names: FILE_SUPERSEDE ... FILE_OVERWRITE_IF)
    create_options: int | None

    def __init__(
        self,
        name: str,
        root_fid: int,
        access_mask: int,
        share_access: int | None,
        disposition: int,
        create_options: int | None,
    ) -> None:
        self.name = name
        self.root_fid = root_fid
        self.access_mask = access_mask
        self.share_access = share_access
        self.disposition = disposition
        self.create_options = create_options


class CreateResponse:
    fid: int
    create_action: int  # FILE_SUPERSEDED, FILE_OPENED, FILE_CREATED, FILE_OVERWRITTEN
    end_of_file: int | None
    resource_type: int

    def __init__(
        self,
        fid: int,
        create_action: int,
        end_of_file: int | None,
        resource_type: int,
    ) -> None:
        self.fid = fid
        self.create_action = create_action
        self.end_of_file = end_of_file
        self.resource_type = resource_type


# AndX, Reserved, NameLength, Flags, RootDirectoryFID, DesiredAccess, AllocationSize,
# ExtFileAttributes, ShareAccess, CreateDisposition, CreateOptions, ImpersonationLevel,
# SecurityFlags
_NT_CREATE_ANDX: Final = struct.Struct("<4xxHIIIQIIIIIB")
# AndX, OplockLevel, FID, CreateDisposition (the action), 4 times, ExtFileAttributes,
# AllocationSize, EndOfFile, ResourceType, NMPipeStatus, Directory
_NT_CREATE_ANDX_RESPONSE: Final = struct.Struct("<4xBHI32xIQQHHB")


def parse_nt_create_request(msg: bytes, block: Block, unicode: bool) -> CreateRequest:
    (_, _, root, access, _, _, share, disposition, options, _, _) = _words(
        msg, block, _NT_CREATE_ANDX
    )
    name, _ = smb_string(msg, block.data, block.end, unicode)
    return CreateRequest(name, root, access, share, disposition, options)


def parse_nt_create_response(msg: bytes, block: Block) -> CreateResponse:
    (_, fid, action, _, _, end_of_file, resource, _, _) = _words(
        msg, block, _NT_CREATE_ANDX_RESPONSE
    )
    return CreateResponse(fid, action, end_of_file, resource)


# Flags, RootDirectoryFID, DesiredAccess, AllocationSize, ExtFileAttributes, ShareAccess,
# CreateDisposition, CreateOptions, SecurityDescriptorLength, EALength, NameLength,
# ImpersonationLevel, SecurityFlags; the Name follows
_NT_TRANSACT_CREATE: Final = struct.Struct("<IIIQIIIIIIIIB")
# OplockLevel, Reserved, FID, CreateAction, EAErrorOffset, 4 times, ExtFileAttributes,
# AllocationSize, EndOfFile, ResourceType, NMPipeStatus, Directory
_NT_TRANSACT_CREATE_RESPONSE: Final = struct.Struct("<BxHI4x32xIQQHHB")


def parse_nt_transact_create(parameters: bytes, unicode: bool) -> CreateRequest:
    """NT_TRANSACT_CREATE parameters (MS-CIFS 2.2.7.1.1); the Name is aligned to its block."""
    if len(parameters) < _NT_TRANSACT_CREATE.size:
        raise ValueError("NT_TRANSACT_CREATE parameters truncated")
    (_, root, access, _, _, share, disposition, options, _, _, name_length, _, _) = (
        _NT_TRANSACT_CREATE.unpack_from(parameters)
    )
    start = _NT_TRANSACT_CREATE.size
    if unicode and (len(parameters) - start - name_length) & 1:
        start += 1  # a pad byte aligns the Name to its parameter block (Samba, Windows)
    name, _ = smb_string(parameters, start, start + name_length, unicode)
    return CreateRequest(name, root, access, share, disposition, options)


def parse_nt_transact_create_response(parameters: bytes) -> CreateResponse:
    if len(parameters) < _NT_TRANSACT_CREATE_RESPONSE.size:
        raise ValueError("NT_TRANSACT_CREATE response parameters truncated")
    (_, fid, action, _, _, end_of_file, resource, _, _) = _NT_TRANSACT_CREATE_RESPONSE.unpack_from(
        parameters
    )
    return CreateResponse(fid, action, end_of_file, resource)


# AndX, Flags, AccessMode, SearchAttrs, FileAttrs, CreationTime, OpenMode, AllocationSize,
# Timeout, Reserved
_OPEN_ANDX: Final = struct.Struct("<4xHHHHIHIII")
# AndX, FID, FileAttrs, LastWriteTime, FileDataSize, AccessRights, ResourceType, NMPipeStatus,
# OpenResults
_OPEN_ANDX_RESPONSE: Final = struct.Struct("<4xHHIIHHHH")
# AccessMode (low 2 bits: read, write, read/write, execute) as the NT access it grants:
# FILE_GENERIC_READ, FILE_GENERIC_WRITE, both, FILE_GENERIC_EXECUTE
_OPEN_ACCESS: Final = (0x00120089, 0x00120116, 0x0012019F, 0x001200A0)
# OpenMode (FileExistsOpts: fail, open, truncate; CreateFile) → CreateDisposition
_OPEN_DISPOSITIONS: Final = {(0, True): 2, (1, False): 1, (1, True): 3, (2, False): 4, (2, True): 5}


def parse_open_andx_request(msg: bytes, block: Block, unicode: bool) -> CreateRequest:
    """OPEN_ANDX (MS-CIFS 2.2.4.41) in NT_CREATE_ANDX terms: AccessMode and OpenMode mapped."""
    (_, access_mode, _, _, _, open_mode, _, _, _) = _words(msg, block, _OPEN_ANDX)
    name, _ = smb_string(msg, block.data, block.end, unicode)
    disposition = _OPEN_DISPOSITIONS.get((open_mode & 0x3, bool(open_mode & 0x10)), FILE_OPEN)
    return CreateRequest(name, 0, _OPEN_ACCESS[access_mode & 0x3], None, disposition, None)


def parse_open_andx_response(msg: bytes, block: Block) -> CreateResponse:
    (fid, _, _, size, _, resource, _, results) = _words(msg, block, _OPEN_ANDX_RESPONSE)
    # OpenResults 1, 2, 3 (opened, created, truncated): FILE_OPENED, FILE_CREATED, FILE_OVERWRITTEN
    return CreateResponse(fid, results & 0x3 or FILE_OPENED, size, resource)


# --- READ_ANDX, WRITE_ANDX, CLOSE --------------------------------------------------------------

_READ_ANDX: Final = struct.Struct("<4xHI")  # FID, Offset; OffsetHigh at word 10 (12 words)
# Available, DataCompactionMode, Reserved1, DataLength, DataOffset, DataLengthHigh
_READ_ANDX_RESPONSE: Final = struct.Struct("<4xHHHHHH")
# FID, Offset, Timeout, WriteMode, Remaining, DataLengthHigh, DataLength, DataOffset;
# OffsetHigh at word 12 (14 words)
_WRITE_ANDX: Final = struct.Struct("<4xHIIHHHHH")
_WRITE_ANDX_RESPONSE: Final = struct.Struct("<4xHHH")  # Count, Available, CountHigh
_OFFSET_HIGH: Final = struct.Struct("<I")


def _offset_high(msg: bytes, block: Block, word: int) -> int:
    if block.word_count < word + 2:
        return 0
    return _OFFSET_HIGH.unpack_from(msg, block.words + 2 * word)[0] << 32


def parse_read_request(msg: bytes, block: Block) -> tuple[int, int]:
    """(FID, offset) of a READ_ANDX request."""
    fid, offset = _words(msg, block, _READ_ANDX)
    return fid, offset | _offset_high(msg, block, 10)


def parse_read_response(msg: bytes, block: Block) -> tuple[int, int]:
    """(data length, data offset from the header) of a READ_ANDX response."""
    (_, _, _, length, data_offset, length_high) = _words(msg, block, _READ_ANDX_RESPONSE)
    return length | length_high << 16, data_offset


class WriteRequest:
    __slots__ = ("fid", "offset", "write_mode", "length", "data_offset")

    def __init__(
        self,
        fid: int,
        offset: int,
        write_mode: int,
        length: int,
        data_offset: int,  # from the header; the data may be padded away from the Bytes block
    ) -> None:
        self.fid = fid
        self.offset = offset
        self.write_mode = write_mode
        self.length = length
        self.data_offset = data_offset


def parse_write_request(msg: bytes, block: Block) -> WriteRequest:
    (fid, offset, _, mode, _, high, length, data_offset) = _words(msg, block, _WRITE_ANDX)
    offset |= _offset_high(msg, block, 12)
    return WriteRequest(fid, offset, mode, length | high << 16, data_offset)


def parse_write_response(msg: bytes, block: Block) -> int:
    """The count of bytes written."""
    count, _, high = _words(msg, block, _WRITE_ANDX_RESPONSE)
    return count | high << 16


def parse_fid(msg: bytes, block: Block) -> int:
    """The FID in the first word (CLOSE)."""
    return _words(msg, block, _U16)[0]


# --- DELETE, CREATE_DIRECTORY, DELETE_DIRECTORY, RENAME, NT_RENAME ----------------------------


def parse_name_request(msg: bytes, block: Block, unicode: bool) -> str:
    """The one name of DELETE, CREATE_DIRECTORY and DELETE_DIRECTORY."""
    return _buffer_format_string(msg, block.data, block.end, unicode)[0]


def parse_rename_request(msg: bytes, block: Block, unicode: bool) -> tuple[int | None, str, str]:
    """(NT_RENAME InformationLevel or None for RENAME, old name, new name)."""
    level = _words(msg, block, _NT_RENAME)[0] if block.command == SMB_COM_NT_RENAME else None
    old, offset = _buffer_format_string(msg, block.data, block.end, unicode)
    new, _ = _buffer_format_string(msg, offset, block.end, unicode)
    return level, old, new


# --- transactions ------------------------------------------------------------------------------


class TransactionPart:
    """One message of a transaction: its share of the parameters and data, and the totals."""

    total_parameter_count: int
    total_data_count: int
    parameters: bytes
    parameter_displacement: int
    data: bytes
    data_displacement: int
    setup: tuple[int, ...]  # TRANSACTION/TRANSACTION2 setup words; NT_TRANSACT (Function,)

    def __init__(
        self,
        total_parameter_count: int,
        total_data_count: int,
        parameters: bytes,
        parameter_displacement: int,
        data: bytes,
        data_displacement: int,
        setup: tuple[int, ...] = (),
    ) -> None:
        self.total_parameter_count = total_parameter_count
        self.total_data_count = total_data_count
        self.parameters = parameters
        self.parameter_displacement = parameter_displacement
        self.data = data
        self.data_displacement = data_displacement
        self.setup = setup


# TotalParameterCount, TotalDataCount, MaxParameterCount, MaxDataCount, MaxSetupCount,
# Reserved1, Flags, Timeout, Reserved2, ParameterCount, ParameterOffset, DataCount, DataOffset,
# SetupCount, Reserved3
_TRANS: Final = struct.Struct("<HHHHBxHI2xHHHHBx")
# TotalParameterCount, TotalDataCount, Reserved1, ParameterCount, ParameterOffset,
# ParameterDisplacement, DataCount, DataOffset, DataDisplacement, SetupCount, Reserved2
_TRANS_RESPONSE: Final = struct.Struct("<HH2xHHHHHHBx")
# TotalParameterCount, TotalDataCount, ParameterCount, ParameterOffset, ParameterDisplacement,
# DataCount, DataOffset, DataDisplacement (TRANSACTION2_SECONDARY adds a FID)
_TRANS_SECONDARY: Final = struct.Struct("<HHHHHHHH")
# MaxSetupCount, Reserved1, TotalParameterCount, TotalDataCount, MaxParameterCount,
# MaxDataCount, ParameterCount, ParameterOffset, DataCount, DataOffset, SetupCount, Function
_NT_TRANS: Final = struct.Struct("<B2xIIIIIIIIBH")
# Reserved1, TotalParameterCount, TotalDataCount, ParameterCount, ParameterOffset,
# ParameterDisplacement, DataCount, DataOffset, DataDisplacement, SetupCount
_NT_TRANS_RESPONSE: Final = struct.Struct("<3xIIIIIIIIB")
_NT_TRANS_SECONDARY: Final = struct.Struct("<3xIIIIIIII")


def _setup(msg: bytes, block: Block, at: int, count: int) -> tuple[int, ...]:
    if at + 2 * count > block.word_count * 2:
        raise ValueError(f"{command_name(block.command)}: {count} setup words beyond the words")
    return struct.unpack_from(f"<{count}H", msg, block.words + at)


def _part(
    msg: bytes,
    total_parameters: int,
    total_data: int,
    parameter_count: int,
    parameter_offset: int,
    parameter_displacement: int,
    data_count: int,
    data_offset: int,
    data_displacement: int,
    setup: tuple[int, ...] = (),
) -> TransactionPart:
    """A transaction message's share: its parameters and data cut out by their offsets."""
    return TransactionPart(
        total_parameters,
        total_data,
        _slice(msg, parameter_offset, parameter_count, "parameters"),
        parameter_displacement,
        _slice(msg, data_offset, data_count, "data"),
        data_displacement,
        setup,
    )


def parse_transaction_request(msg: bytes, block: Block) -> TransactionPart:
    """A TRANSACTION or TRANSACTION2 primary request (MS-CIFS 2.2.4.33.1, 2.2.4.46.1).

    The parameters and data are found by their offsets; TRANSACTION's Name (``\\PIPE\\``) is
    not needed: a named-pipe transaction names its pipe by the FID in its setup words.
    """
    (total_p, total_d, _, _, _, _, _, p_count, p_off, d_count, d_off, setup_count) = _words(
        msg, block, _TRANS
    )
    setup = _setup(msg, block, _TRANS.size, setup_count)
    return _part(msg, total_p, total_d, p_count, p_off, 0, d_count, d_off, 0, setup)


def parse_transaction_response(msg: bytes, block: Block) -> TransactionPart:
    """One TRANSACTION or TRANSACTION2 response (there may be several per request)."""
    (total_p, total_d, p_count, p_off, p_disp, d_count, d_off, d_disp, setup_count) = _words(
        msg, block, _TRANS_RESPONSE
    )
    setup = _setup(msg, block, _TRANS_RESPONSE.size, setup_count)
    return _part(msg, total_p, total_d, p_count, p_off, p_disp, d_count, d_off, d_disp, setup)


def parse_transaction_secondary(msg: bytes, block: Block) -> TransactionPart:
    """TRANSACTION_SECONDARY, TRANSACTION2_SECONDARY or NT_TRANSACT_SECONDARY."""
    if block.command == SMB_COM_NT_TRANSACT_SECONDARY:
        fields = _words(msg, block, _NT_TRANS_SECONDARY)
    else:
        fields = _words(msg, block, _TRANS_SECONDARY)
    return _part(msg, *fields)


def parse_nt_transact_request(msg: bytes, block: Block) -> TransactionPart:
    """An NT_TRANSACT primary request (MS-CIFS 2.2.4.62.1); ``setup`` holds the Function."""
    (_, total_p, total_d, _, _, p_count, p_off, d_count, d_off, _, function) = _words(
        msg, block, _NT_TRANS
    )
    return _part(msg, total_p, total_d, p_count, p_off, 0, d_count, d_off, 0, (function,))


def parse_nt_transact_response(msg: bytes, block: Block) -> TransactionPart:
    (total_p, total_d, p_count, p_off, p_disp, d_count, d_off, d_disp, _) = _words(
        msg, block, _NT_TRANS_RESPONSE
    )
    return _part(msg, total_p, total_d, p_count, p_off, p_disp, d_count, d_off, d_disp)


# --- TRANSACTION2 sub-commands (MS-CIFS 2.2.6) -------------------------------------------------

_FIND_FIRST2: Final = struct.Struct(
    "<HHHHI"
)  # SearchAttributes, SearchCount, Flags, Level, Storage
_FIND_NEXT2: Final = struct.Struct("<HHHIH")  # SID, SearchCount, InformationLevel, ResumeKey, Flags
_PATH_INFORMATION: Final = struct.Struct("<H4x")  # InformationLevel, Reserved; FileName follows
_FILE_INFORMATION: Final = struct.Struct("<HH")  # FID, InformationLevel
_RENAME_INFORMATION: Final = struct.Struct(
    "<B3xII"
)  # ReplaceIfExists, RootDirectory, FileNameLength


def _unpack(layout: struct.Struct, buf: bytes, what: str) -> tuple:
    if len(buf) < layout.size:
        raise ValueError(f"{what} parameters truncated")
    return layout.unpack_from(buf)


def parse_find_first2(parameters: bytes, unicode: bool) -> tuple[int, str]:
    """(InformationLevel, FileName: the directory and search pattern, ``\\dir\\*``)."""
    level = _unpack(_FIND_FIRST2, parameters, "TRANS2_FIND_FIRST2")[3]
    return level, smb_string(parameters, _FIND_FIRST2.size, len(parameters), unicode)[0]


def parse_find_first2_response(parameters: bytes) -> int:
    """The SID that FIND_NEXT2 continues."""
    return _unpack(_U16, parameters, "TRANS2_FIND_FIRST2 response")[0]


def parse_find_next2(parameters: bytes) -> tuple[int, int]:
    """(SID, InformationLevel)."""
    sid, _, level, _, _ = _unpack(_FIND_NEXT2, parameters, "TRANS2_FIND_NEXT2")
    return sid, level


def parse_path_information(parameters: bytes, unicode: bool) -> tuple[int, str]:
    """(InformationLevel, FileName) of QUERY_PATH_INFORMATION / SET_PATH_INFORMATION."""
    (level,) = _unpack(_PATH_INFORMATION, parameters, "TRANS2 path information")
    return level, smb_string(parameters, _PATH_INFORMATION.size, len(parameters), unicode)[0]


def parse_file_information(parameters: bytes) -> tuple[int, int]:
    """(FID, InformationLevel) of QUERY_FILE_INFORMATION / SET_FILE_INFORMATION."""
    return _unpack(_FILE_INFORMATION, parameters, "TRANS2 file information")


def parse_fs_information(parameters: bytes) -> int:
    """InformationLevel of QUERY_FS_INFORMATION."""
    return _unpack(_U16, parameters, "TRANS2_QUERY_FS_INFORMATION")[0]


def level_name(level: int, levels: dict[int, str], classes: dict[int, str]) -> str:
    """The name of an information level: from ``levels``, or for a pass-through level (1000 +
    an MS-FSCC class) the class's name from ``classes``; the number when neither knows it."""
    if level >= SMB_INFO_PASSTHROUGH:
        return classes.get(level - SMB_INFO_PASSTHROUGH, str(level))
    return levels.get(level, f"0x{level:04X}")


def parse_rename_information(data: bytes, unicode: bool) -> str:
    """The new name in FileRenameInformation as SMB1 passes it through (32-bit RootDirectory)."""
    length = _unpack(_RENAME_INFORMATION, data, "FileRenameInformation")[2]
    start = _RENAME_INFORMATION.size
    return smb_string(data, start, start + length, unicode)[0]
