"""File system values that SMB1 and SMB2 carry alike (MS-FSCC, and the NT create values).

The information classes of SET_INFO/QUERY_INFO and of SMB1's pass-through levels, the FSCTL
codes of IOCTL, the structures smbwatch reads inside their buffers, and the create disposition,
options and action of NtCreateFile that both NT_CREATE_ANDX and SMB2 CREATE send unchanged.
Section numbers are MS-FSCC's unless said otherwise.
"""

from __future__ import annotations

import struct
from typing import Final

from smbwatch.utf16 import utf16le

# CreateDisposition, CreateAction (MS-SMB2 2.2.13, 2.2.14; MS-CIFS 2.2.4.64 for NT_CREATE_ANDX)
CREATE_DISPOSITIONS: Final = (
    "FILE_SUPERSEDE",
    "FILE_OPEN",
    "FILE_CREATE",
    "FILE_OPEN_IF",
    "FILE_OVERWRITE",
    "FILE_OVERWRITE_IF",
)
CREATE_ACTIONS: Final = ("FILE_SUPERSEDED", "FILE_OPENED", "FILE_CREATED", "FILE_OVERWRITTEN")
FILE_OPENED: Final = 1
FILE_DELETE_ON_CLOSE: Final = 0x00001000  # CreateOptions

# FileInformationClass (MS-FSCC 2.4)
FileRenameInformation = 10
FileLinkInformation = 11
FileDispositionInformation = 13
FileDispositionInformationEx = 64
FileRenameInformationEx = 65
FILE_DISPOSITION_DELETE: Final = 0x00000001
FILE_INFORMATION_CLASSES: Final = {
    1: "FileDirectoryInformation",
    2: "FileFullDirectoryInformation",
    3: "FileBothDirectoryInformation",
    4: "FileBasicInformation",
    5: "FileStandardInformation",
    6: "FileInternalInformation",
    7: "FileEaInformation",
    8: "FileAccessInformation",
    9: "FileNameInformation",
    10: "FileRenameInformation",
    11: "FileLinkInformation",
    12: "FileNamesInformation",
    13: "FileDispositionInformation",
    14: "FilePositionInformation",
    15: "FileFullEaInformation",
    16: "FileModeInformation",
    17: "FileAlignmentInformation",
    18: "FileAllInformation",
    19: "FileAllocationInformation",
    20: "FileEndOfFileInformation",
    21: "FileAlternateNameInformation",
    22: "FileStreamInformation",
    23: "FilePipeInformation",
    24: "FilePipeLocalInformation",
    25: "FilePipeRemoteInformation",
    28: "FileCompressionInformation",
    29: "FileObjectIdInformation",
    32: "FileQuotaInformation",
    33: "FileReparsePointInformation",
    34: "FileNetworkOpenInformation",
    35: "FileAttributeTagInformation",
    36: "FileTrackingInformation",
    37: "FileIdBothDirectoryInformation",
    38: "FileIdFullDirectoryInformation",
    39: "FileValidDataLengthInformation",
    40: "FileShortNameInformation",
    46: "FileHardLinkInformation",
    48: "FileNormalizedNameInformation",
    59: "FileIdInformation",
    60: "FileIdExtdDirectoryInformation",
    63: "FileIdExtdBothDirectoryInformation",
    64: "FileDispositionInformationEx",
    65: "FileRenameInformationEx",
}
# FsInformationClass (MS-FSCC 2.5)
FS_INFORMATION_CLASSES: Final = {
    1: "FileFsVolumeInformation",
    2: "FileFsLabelInformation",
    3: "FileFsSizeInformation",
    4: "FileFsDeviceInformation",
    5: "FileFsAttributeInformation",
    6: "FileFsControlInformation",
    7: "FileFsFullSizeInformation",
    8: "FileFsObjectIdInformation",
    9: "FileFsDriverPathInformation",
    10: "FileFsVolumeFlagsInformation",
    11: "FileFsSectorSizeInformation",
}

# FSCTL codes (2.3): the CtlCode of an IOCTL (MS-SMB2 2.2.31)
FSCTL_PIPE_TRANSCEIVE: Final = 0x0011C017
FSCTL_NAMES: Final = {
    0x00060194: "FSCTL_DFS_GET_REFERRALS",
    0x000601B0: "FSCTL_DFS_GET_REFERRALS_EX",
    0x0009003C: "FSCTL_GET_COMPRESSION",
    0x00090064: "FSCTL_GET_NTFS_VOLUME_DATA",
    0x0009009C: "FSCTL_GET_OBJECT_ID",
    0x000900A4: "FSCTL_SET_REPARSE_POINT",
    0x000900A8: "FSCTL_GET_REPARSE_POINT",
    0x000900C0: "FSCTL_CREATE_OR_GET_OBJECT_ID",
    0x000900C4: "FSCTL_SET_SPARSE",
    0x0009027C: "FSCTL_GET_INTEGRITY_INFORMATION",
    0x00090284: "FSCTL_QUERY_FILE_REGIONS",
    0x00090300: "FSCTL_QUERY_SHARED_VIRTUAL_DISK_SUPPORT",
    0x00090304: "FSCTL_SVHDX_SYNC_TUNNEL_REQUEST",
    0x00090350: "FSCTL_STORAGE_QOS_CONTROL",
    0x00090364: "FSCTL_SVHDX_ASYNC_TUNNEL_REQUEST",
    0x000940CF: "FSCTL_QUERY_ALLOCATED_RANGES",
    0x00094264: "FSCTL_OFFLOAD_READ",
    0x00098098: "FSCTL_SET_OBJECT_ID",
    0x000980A0: "FSCTL_DELETE_OBJECT_ID",
    0x000900AC: "FSCTL_DELETE_REPARSE_POINT",
    0x000980BC: "FSCTL_SET_OBJECT_ID_EXTENDED",
    0x000980C8: "FSCTL_SET_ZERO_DATA",
    0x00098208: "FSCTL_FILE_LEVEL_TRIM",
    0x00098268: "FSCTL_OFFLOAD_WRITE",
    0x0009C040: "FSCTL_SET_COMPRESSION",
    0x0009C280: "FSCTL_SET_INTEGRITY_INFORMATION",
    0x00110018: "FSCTL_PIPE_WAIT",
    0x0011400C: "FSCTL_PIPE_PEEK",
    0x0011C017: "FSCTL_PIPE_TRANSCEIVE",
    0x00140078: "FSCTL_SRV_REQUEST_RESUME_KEY",
    0x001401D4: "FSCTL_LMR_REQUEST_RESILIENCY",
    0x001401FC: "FSCTL_QUERY_NETWORK_INTERFACE_INFO",
    0x00140204: "FSCTL_VALIDATE_NEGOTIATE_INFO",
    0x00144064: "FSCTL_SRV_ENUMERATE_SNAPSHOTS",
    0x001440F2: "FSCTL_SRV_COPYCHUNK",
    0x001441BB: "FSCTL_SRV_READ_HASH",
    0x001480F2: "FSCTL_SRV_COPYCHUNK_WRITE",
}


# FILE_RENAME_INFORMATION_TYPE_2 / FILE_LINK_INFORMATION_TYPE_2 (MS-FSCC 2.4.42.2, 2.4.27.2):
# ReplaceIfExists (or Flags in the Ex form), Reserved, RootDirectory, FileNameLength
_FILE_RENAME_INFORMATION: Final = struct.Struct("<8xQI")


def file_rename_information_name(buffer: bytes) -> str:
    """The target name of a FileRenameInformation(Ex) or FileLinkInformation buffer."""
    _, length = _FILE_RENAME_INFORMATION.unpack_from(buffer)
    start = _FILE_RENAME_INFORMATION.size
    if start + length > len(buffer):
        raise ValueError(f"rename target of {length} bytes beyond a {len(buffer)}-byte buffer")
    return utf16le(buffer[start : start + length])


_U8: Final = struct.Struct("<B")
_U32: Final = struct.Struct("<I")


def disposition_deletes(info_class: int, buffer: bytes) -> bool:
    """Whether a FileDispositionInformation(Ex) buffer marks the file for deletion."""
    if info_class == FileDispositionInformation:
        return _U8.unpack_from(buffer)[0] != 0  # DeletePending
    return bool(_U32.unpack_from(buffer)[0] & FILE_DISPOSITION_DELETE)  # Flags
