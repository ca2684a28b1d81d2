"""Pure parsers of SMB2/SMB3 structures (MS-SMB2 section 2.2), named as in the specification.

Every parser takes one SMB2 message that starts with its 64-byte header (offsets inside a
message are relative to that header) and reads only what smbwatch reports. Structures are read
with precompiled ``struct.Struct`` objects; a truncated structure raises ``struct.error`` and an
offset or length that points outside the message raises ``ValueError``. Nothing is copied that
is not returned.
"""

from __future__ import annotations

import struct
from typing import Final

from smbwatch.smb.fscc import FILE_INFORMATION_CLASSES, FS_INFORMATION_CLASSES
from smbwatch.utf16 import utf16le

PROTOCOL_ID: Final = b"\xfeSMB"
TRANSFORM_PROTOCOL_ID: Final = b"\xfdSMB"
COMPRESSION_PROTOCOL_ID: Final = b"\xfcSMB"
HEADER_SIZE: Final = 64

# Commands (2.2.1)
NEGOTIATE: Final = 0x00
SESSION_SETUP: Final = 0x01
LOGOFF: Final = 0x02
TREE_CONNECT: Final = 0x03
TREE_DISCONNECT: Final = 0x04
CREATE: Final = 0x05
CLOSE: Final = 0x06
FLUSH: Final = 0x07
READ: Final = 0x08
WRITE: Final = 0x09
LOCK: Final = 0x0A
IOCTL: Final = 0x0B
CANCEL: Final = 0x0C
ECHO: Final = 0x0D
QUERY_DIRECTORY: Final = 0x0E
CHANGE_NOTIFY: Final = 0x0F
QUERY_INFO: Final = 0x10
SET_INFO: Final = 0x11
OPLOCK_BREAK: Final = 0x12
COMMAND_NAMES: tuple[str, ...] = (
    "NEGOTIATE",
    "SESSION_SETUP",
    "LOGOFF",
    "TREE_CONNECT",
    "TREE_DISCONNECT",
    "CREATE",
    "CLOSE",
    "FLUSH",
    "READ",
    "WRITE",
    "LOCK",
    "IOCTL",
    "CANCEL",
    "ECHO",
    "QUERY_DIRECTORY",
    "CHANGE_NOTIFY",
    "QUERY_INFO",
    "SET_INFO",
    "OPLOCK_BREAK",
)

# Header flags (2.2.1.2)
SMB2_FLAGS_SERVER_TO_REDIR: Final = 0x00000001
SMB2_FLAGS_ASYNC_COMMAND: Final = 0x00000002
SMB2_FLAGS_RELATED_OPERATIONS: Final = 0x00000004

DIALECTS: Final = {
    0x0202: "2.0.2",
    0x0210: "2.1",
    0x0300: "3.0",
    0x0302: "3.0.2",
    0x0311: "3.1.1",
}
SMB2_DIALECT_WILDCARD: Final = 0x02FF  # answer to an SMB1 negotiate: a real SMB2 NEGOTIATE follows

# SESSION_SETUP response SessionFlags (2.2.6)
SMB2_SESSION_FLAG_IS_GUEST: Final = 0x0001
SMB2_SESSION_FLAG_IS_NULL: Final = 0x0002
SMB2_SESSION_FLAG_ENCRYPT_DATA: Final = 0x0004

# TREE_CONNECT response (2.2.10)
SHARE_TYPES: Final = {0x01: "disk", 0x02: "pipe", 0x03: "print"}
SMB2_SHAREFLAG_ENCRYPT_DATA: Final = 0x00008000

# CLOSE (2.2.15)
SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB: Final = 0x0001

# SET_INFO / QUERY_INFO InfoType (2.2.37, 2.2.39)
SMB2_0_INFO_FILE: Final = 0x01
SMB2_0_INFO_FILESYSTEM: Final = 0x02
INFO_TYPE_NAMES: Final = {0x03: "SMB2_0_INFO_SECURITY", 0x04: "SMB2_0_INFO_QUOTA"}

# StructureSize, CreditCharge, Status, Command, CreditRequest/Response, Flags, NextCommand,
# MessageId, AsyncId (or Reserved + TreeId), SessionId; the Signature is not read.
_HEADER: Final = struct.Struct("<4xHHIHHIIQQQ")


class Header:
    """SMB2 packet header (2.2.1). ``tree_id`` is None in an async header."""

    __slots__ = (
        "status",
        "command",
        "flags",
        "next_command",
        "message_id",
        "async_id",
        "tree_id",
        "session_id",
    )

    def __init__(
        self,
        status: int,
        command: int,
        flags: int,
        next_command: int,
        message_id: int,
        async_id: int | None,
        tree_id: int | None,
        session_id: int,
    ) -> None:
        self.status = status
        self.command = command
        self.flags = flags
        self.next_command = next_command
        self.message_id = message_id
        self.async_id = async_id
        self.tree_id = tree_id
        self.session_id = session_id


def parse_header(msg: bytes, offset: int = 0) -> Header:
    """The SYNC or ASYNC header at ``offset`` of ``msg`` (the protocol id is the caller's)."""
    (_, _, status, command, _, flags, next_command, message_id, word, session_id) = (
        _HEADER.unpack_from(msg, offset)
    )
    if flags & SMB2_FLAGS_ASYNC_COMMAND:
        return Header(status, command, flags, next_command, message_id, word, None, session_id)
    tree_id = word >> 32
    return Header(status, command, flags, next_command, message_id, None, tree_id, session_id)


def buffer(msg: bytes, offset: int, length: int, what: str) -> bytes:
    """``length`` bytes at ``offset`` of the message, or ValueError when they are not all there."""
    if length == 0:
        return b""
    if offset < HEADER_SIZE or offset + length > len(msg):
        raise ValueError(f"{what} at {offset}+{length} outside a {len(msg)}-byte message")
    return msg[offset : offset + length]


def _utf16(msg: bytes, offset: int, length: int, what: str) -> str:
    return utf16le(buffer(msg, offset, length, what))


# NEGOTIATE response (2.2.4): StructureSize, SecurityMode, DialectRevision
_NEGOTIATE_RESPONSE: Final = struct.Struct("<HHH")


def negotiate_response_dialect(msg: bytes) -> int:
    """DialectRevision of a NEGOTIATE response."""
    return _NEGOTIATE_RESPONSE.unpack_from(msg, HEADER_SIZE)[2]


# SESSION_SETUP request (2.2.5): StructureSize, Flags, SecurityMode, Capabilities, Channel,
# SecurityBufferOffset, SecurityBufferLength, PreviousSessionId
_SESSION_SETUP_REQUEST: Final = struct.Struct("<HBBIIHHQ")
# SESSION_SETUP response (2.2.6): StructureSize, SessionFlags, SecurityBufferOffset/Length
_SESSION_SETUP_RESPONSE: Final = struct.Struct("<HHHH")


def session_setup_request_buffer(msg: bytes) -> bytes:
    """The security buffer (SPNEGO/NTLMSSP/Kerberos token) of a SESSION_SETUP request."""
    fields = _SESSION_SETUP_REQUEST.unpack_from(msg, HEADER_SIZE)
    return buffer(msg, fields[5], fields[6], "SESSION_SETUP security buffer")


def parse_session_setup_response(msg: bytes) -> tuple[int, bytes]:
    """(SessionFlags, security buffer) of a SESSION_SETUP response."""
    _, session_flags, offset, length = _SESSION_SETUP_RESPONSE.unpack_from(msg, HEADER_SIZE)
    return session_flags, buffer(msg, offset, length, "SESSION_SETUP security buffer")


# TREE_CONNECT request (2.2.9): StructureSize, Flags, PathOffset, PathLength
_TREE_CONNECT_REQUEST: Final = struct.Struct("<HHHH")
# TREE_CONNECT response (2.2.10): StructureSize, ShareType, Reserved, ShareFlags, Capabilities,
# MaximalAccess
_TREE_CONNECT_RESPONSE: Final = struct.Struct("<HBxIII")


def tree_connect_request_path(msg: bytes) -> str:
    """The share path as sent by the client: ``\\\\SERVER\\SHARE``."""
    _, _, offset, length = _TREE_CONNECT_REQUEST.unpack_from(msg, HEADER_SIZE)
    return _utf16(msg, offset, length, "TREE_CONNECT path")


def parse_tree_connect_response(msg: bytes) -> tuple[int, int, int]:
    """(ShareType, ShareFlags, MaximalAccess) of a TREE_CONNECT response."""
    _, share_type, share_flags, _, maximal_access = _TREE_CONNECT_RESPONSE.unpack_from(
        msg, HEADER_SIZE
    )
    return share_type, share_flags, maximal_access


# CREATE request (2.2.13): StructureSize, SecurityFlags, RequestedOplockLevel,
# ImpersonationLevel, SmbCreateFlags, Reserved, DesiredAccess, FileAttributes, ShareAccess,
# CreateDisposition, CreateOptions, NameOffset, NameLength, CreateContextsOffset/Length
_CREATE_REQUEST: Final = struct.Struct("<HBBIQQIIIIIHHII")


class CreateRequest:
    __slots__ = (
        "desired_access",
        "file_attributes",
        "share_access",
        "create_disposition",
        "create_options",
        "name",
    )

    def __init__(
        self,
        desired_access: int,
        file_attributes: int,
        share_access: int,
        create_disposition: int,
        create_options: int,
        name: str,
    ) -> None:
        self.desired_access = desired_access
        self.file_attributes = file_attributes
        self.share_access = share_access
        self.create_disposition = create_disposition
        self.create_options = create_options
        self.name = name


def parse_create_request(msg: bytes) -> CreateRequest:
    """What a CREATE request asks for, and the file name relative to the share."""
    fields = _CREATE_REQUEST.unpack_from(msg, HEADER_SIZE)
    name = _utf16(msg, fields[11], fields[12], "CREATE name")
    return CreateRequest(fields[6], fields[7], fields[8], fields[9], fields[10], name)


# CREATE response (2.2.14): StructureSize, OplockLevel, Flags, CreateAction, CreationTime,
# LastAccessTime, LastWriteTime, ChangeTime, AllocationSize, EndofFile, FileAttributes,
# Reserved2, FileId
_CREATE_RESPONSE: Final = struct.Struct("<HBBIQQQQQQII16s")


class CreateResponse:
    __slots__ = ("create_action", "end_of_file", "file_attributes", "file_id")

    def __init__(
        self, create_action: int, end_of_file: int, file_attributes: int, file_id: bytes
    ) -> None:
        self.create_action = create_action
        self.end_of_file = end_of_file
        self.file_attributes = file_attributes
        self.file_id = file_id


def parse_create_response(msg: bytes) -> CreateResponse:
    fields = _CREATE_RESPONSE.unpack_from(msg, HEADER_SIZE)
    return CreateResponse(fields[3], fields[9], fields[10], fields[12])


# CLOSE request (2.2.15): StructureSize, Flags, Reserved, FileId
_CLOSE_REQUEST: Final = struct.Struct("<HH4x16s")
# CLOSE response (2.2.16): StructureSize, Flags, Reserved, CreationTime, LastAccessTime,
# LastWriteTime, ChangeTime, AllocationSize, EndofFile
_CLOSE_RESPONSE: Final = struct.Struct("<HH4x32xQQ")


def close_request_file_id(msg: bytes) -> bytes:
    return _CLOSE_REQUEST.unpack_from(msg, HEADER_SIZE)[2]


def close_response_end_of_file(msg: bytes) -> int | None:
    """EndofFile of a CLOSE response, when the client asked for the attributes after close."""
    _, flags, _, end_of_file = _CLOSE_RESPONSE.unpack_from(msg, HEADER_SIZE)
    return end_of_file if flags & SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB else None


# READ request (2.2.19): StructureSize, Padding, Flags, Length, Offset, FileId
_READ_REQUEST: Final = struct.Struct("<HBBIQ16s")
# READ response (2.2.20): StructureSize, DataOffset, Reserved, DataLength, DataRemaining
_READ_RESPONSE: Final = struct.Struct("<HBxII")
READ_RESPONSE_FIXED_END: Final = HEADER_SIZE + 16  # where the data of a READ response may start


class ReadRequest:
    __slots__ = ("length", "offset", "file_id")

    def __init__(self, length: int, offset: int, file_id: bytes) -> None:
        self.length = length
        self.offset = offset
        self.file_id = file_id


def parse_read_request(msg: bytes) -> ReadRequest:
    _, _, _, length, offset, file_id = _READ_REQUEST.unpack_from(msg, HEADER_SIZE)
    return ReadRequest(length, offset, file_id)


def parse_read_response(msg: bytes) -> tuple[int, int]:
    """(DataOffset, DataLength) of a READ response; the data may lie beyond ``msg``."""
    _, data_offset, data_length, _ = _READ_RESPONSE.unpack_from(msg, HEADER_SIZE)
    return data_offset, data_length


# WRITE request (2.2.21): StructureSize, DataOffset, Length, Offset, FileId
_WRITE_REQUEST: Final = struct.Struct("<HHIQ16s")
WRITE_REQUEST_FIXED_END: Final = HEADER_SIZE + 48  # where the data of a WRITE request may start
# WRITE response (2.2.22): StructureSize, Reserved, Count
_WRITE_RESPONSE: Final = struct.Struct("<H2xI")


class WriteRequest:
    __slots__ = ("data_offset", "length", "offset", "file_id")

    def __init__(self, data_offset: int, length: int, offset: int, file_id: bytes) -> None:
        self.data_offset = data_offset
        self.length = length
        self.offset = offset
        self.file_id = file_id


def parse_write_request(msg: bytes) -> WriteRequest:
    """A WRITE request's fixed part; the data may lie beyond ``msg``."""
    _, data_offset, length, offset, file_id = _WRITE_REQUEST.unpack_from(msg, HEADER_SIZE)
    return WriteRequest(data_offset, length, offset, file_id)


def write_response_count(msg: bytes) -> int:
    return _WRITE_RESPONSE.unpack_from(msg, HEADER_SIZE)[1]


def available(msg: bytes, offset: int, length: int) -> bytes:
    """The part of a data buffer that is present in ``msg`` (the decoder may hold only a head)."""
    if offset < HEADER_SIZE:
        return b""
    return msg[offset : offset + length]


# IOCTL request (2.2.31): StructureSize, Reserved, CtlCode, FileId, InputOffset, InputCount,
# MaxInputResponse, OutputOffset, OutputCount, MaxOutputResponse, Flags
_IOCTL_REQUEST: Final = struct.Struct("<H2xI16sIIIIIII")
# IOCTL response (2.2.32): StructureSize, Reserved, CtlCode, FileId, InputOffset, InputCount,
# OutputOffset, OutputCount
_IOCTL_RESPONSE: Final = struct.Struct("<H2xI16sIIII")


class IoctlRequest:
    __slots__ = ("ctl_code", "file_id", "input")

    def __init__(self, ctl_code: int, file_id: bytes, input: bytes) -> None:
        self.ctl_code = ctl_code
        self.file_id = file_id
        self.input = input


def parse_ioctl_request(msg: bytes) -> IoctlRequest:
    fields = _IOCTL_REQUEST.unpack_from(msg, HEADER_SIZE)
    return IoctlRequest(fields[1], fields[2], buffer(msg, fields[3], fields[4], "IOCTL input"))


def ioctl_response_output(msg: bytes) -> bytes:
    fields = _IOCTL_RESPONSE.unpack_from(msg, HEADER_SIZE)
    return buffer(msg, fields[5], fields[6], "IOCTL output")


def ioctl_response_ctl_code(msg: bytes) -> int:
    """The CtlCode an IOCTL response repeats from its request."""
    return _IOCTL_RESPONSE.unpack_from(msg, HEADER_SIZE)[1]


# QUERY_DIRECTORY request (2.2.33): StructureSize, FileInformationClass, Flags, FileIndex,
# FileId, FileNameOffset, FileNameLength
_QUERY_DIRECTORY_REQUEST: Final = struct.Struct("<HBBI16sHH")


def parse_query_directory_request(msg: bytes) -> tuple[bytes, str]:
    """(FileId of the directory, search pattern) of a QUERY_DIRECTORY request."""
    fields = _QUERY_DIRECTORY_REQUEST.unpack_from(msg, HEADER_SIZE)
    return fields[4], _utf16(msg, fields[5], fields[6], "QUERY_DIRECTORY pattern")


# QUERY_INFO request (2.2.37): StructureSize, InfoType, FileInfoClass, OutputBufferLength,
# InputBufferOffset, Reserved, InputBufferLength, AdditionalInformation, Flags, FileId
_QUERY_INFO_REQUEST: Final = struct.Struct("<HBBIH2xIII16s")


class QueryInfoRequest:
    __slots__ = ("info_type", "file_info_class", "file_id")

    def __init__(self, info_type: int, file_info_class: int, file_id: bytes) -> None:
        self.info_type = info_type
        self.file_info_class = file_info_class
        self.file_id = file_id


def parse_query_info_request(msg: bytes) -> QueryInfoRequest:
    _, info_type, info_class, _, _, _, _, _, file_id = _QUERY_INFO_REQUEST.unpack_from(
        msg, HEADER_SIZE
    )
    return QueryInfoRequest(info_type, info_class, file_id)


# SET_INFO request (2.2.39): StructureSize, InfoType, FileInfoClass, BufferLength,
# BufferOffset, Reserved, AdditionalInformation, FileId
_SET_INFO_REQUEST: Final = struct.Struct("<HBBIH2xI16s")


class SetInfoRequest:
    __slots__ = ("info_type", "file_info_class", "file_id", "buffer")

    def __init__(self, info_type: int, file_info_class: int, file_id: bytes, buffer: bytes) -> None:
        self.info_type = info_type
        self.file_info_class = file_info_class
        self.file_id = file_id
        self.buffer = buffer


def parse_set_info_request(msg: bytes) -> SetInfoRequest:
    _, info_type, info_class, length, offset, _, file_id = _SET_INFO_REQUEST.unpack_from(
        msg, HEADER_SIZE
    )
    return SetInfoRequest(info_type, info_class, file_id, buffer(msg, offset, length, "SET_INFO"))


def info_class_name(info_type: int, info_class: int) -> str:
    """``FileRenameInformation``; the InfoType name where the class is not a file class."""
    if info_type == SMB2_0_INFO_FILE:
        table = FILE_INFORMATION_CLASSES
    elif info_type == SMB2_0_INFO_FILESYSTEM:
        table = FS_INFORMATION_CLASSES
    else:
        return INFO_TYPE_NAMES.get(info_type, f"InfoType {info_type}")
    return table.get(info_class, f"{info_class}")


# SMB2 TRANSFORM_HEADER (2.2.41): Signature, Nonce, OriginalMessageSize, Reserved,
# Flags/EncryptionAlgorithm, SessionId
_TRANSFORM_HEADER: Final = struct.Struct("<4x16s16sIHHQ")
TRANSFORM_HEADER_SIZE: Final = _TRANSFORM_HEADER.size


def parse_transform_header(msg: bytes) -> tuple[int, int]:
    """(OriginalMessageSize, SessionId) of an encrypted message."""
    fields = _TRANSFORM_HEADER.unpack_from(msg)
    return fields[2], fields[5]


# COMPRESSION_TRANSFORM_HEADER (2.2.42): OriginalCompressedSegmentSize, then either
# CompressionAlgorithm, Flags, Offset (unchained) or the first chained payload header.
_COMPRESSION_TRANSFORM_HEADER: Final = struct.Struct("<4xIHHI")
COMPRESSION_HEADER_SIZE: Final = _COMPRESSION_TRANSFORM_HEADER.size
_CHAINED_PAYLOAD_HEADER: Final = struct.Struct("<HHI")  # CompressionAlgorithm, Flags, Length
_PATTERN_V1: Final = struct.Struct("<B3xI")  # Pattern, Reserved1, Reserved2, Repetitions
SMB2_COMPRESSION_FLAG_CHAINED: Final = 0x0001
COMPRESSION_NONE: Final = 0x0000
COMPRESSION_PATTERN_V1: Final = 0x0004
COMPRESSION_ALGORITHMS: Final = {
    0x0000: "NONE",
    0x0001: "LZNT1",
    0x0002: "LZ77",
    0x0003: "LZ77+Huffman",
    0x0004: "Pattern_V1",
    0x0005: "LZ4",
}


class UnsupportedCompression(ValueError):
    """The message uses a compression algorithm smbwatch does not decompress."""

    def __init__(self, algorithm: int, prefix: bytes) -> None:
        name = COMPRESSION_ALGORITHMS.get(algorithm, f"0x{algorithm:04x}")
        super().__init__(f"{name} compression")
        self.prefix = prefix  # the uncompressed head of the message, often a whole header


def decompress(msg: bytes, limit: int) -> bytes:
    """The SMB2 message inside a compressed one: uncompressed and Pattern_V1 parts only.

    ``limit`` caps the output so a small message cannot expand into a huge one.
    """
    original_size, algorithm, flags, offset = _COMPRESSION_TRANSFORM_HEADER.unpack_from(msg)
    if original_size > limit:
        raise ValueError(f"compressed message expands to {original_size} bytes")
    if not flags & SMB2_COMPRESSION_FLAG_CHAINED:
        start = COMPRESSION_HEADER_SIZE + offset
        if start > len(msg):
            raise ValueError("compressed data offset beyond the message")
        raise UnsupportedCompression(algorithm, msg[COMPRESSION_HEADER_SIZE:start])
    parts: list[bytes] = []
    size = 0
    position = 8  # the first chained payload header follows OriginalCompressedSegmentSize
    while position < len(msg):
        algorithm, _, length = _CHAINED_PAYLOAD_HEADER.unpack_from(msg, position)
        position += _CHAINED_PAYLOAD_HEADER.size
        if position + length > len(msg):
            raise ValueError("chained compression payload beyond the message")
        if algorithm == COMPRESSION_NONE:
            part = msg[position : position + length]
        elif algorithm == COMPRESSION_PATTERN_V1:
            pattern, repetitions = _PATTERN_V1.unpack_from(msg, position)
            if size + repetitions > original_size:
                raise ValueError("Pattern_V1 repeats beyond the original size")
            part = bytes((pattern,)) * repetitions
        else:
            raise UnsupportedCompression(algorithm, b"".join(parts))
        parts.append(part)
        size += len(part)
        if size > original_size:
            raise ValueError("chained compression expands beyond the original size")
        position += length
    return b"".join(parts)
