"""The name tables of smb2_records, checked against tshark's value strings and impacket."""

from __future__ import annotations

import functools

from impacket import smb3structs
from smb2_wire import tshark

from smbwatch.smb import smb2_records as rec


@functools.cache
def tshark_values(field: str) -> dict[int, str]:
    """Wireshark's value string of one field (``tshark -G values``)."""
    values = {}
    for line in tshark("-G", "values").splitlines():
        parts = line.split("\t")
        if len(parts) >= 4 and parts[0] == "V" and parts[1] == field:
            values[int(parts[2], 0)] = parts[3]
    assert values, field
    return values


def squashed(name: str) -> str:
    """``SMB2_FILE_END_OF_FILE_INFO`` and ``FileEndOfFileInformation`` alike: ``endoffile``."""
    name = name.lower().replace("_", "")
    for prefix in ("smb2file", "smb2find", "file"):
        name = name.removeprefix(prefix)
    for suffix in ("information", "info"):
        name = name.removesuffix(suffix)
    return name


def test_fsctl_names_agree_with_tshark_and_impacket() -> None:
    wireshark = tshark_values("smb2.ioctl.function")
    impacket = {
        value: name
        for name, value in vars(smb3structs).items()
        if name.startswith("FSCTL_") and isinstance(value, int)
    }
    for code, name in rec.FSCTL_NAMES.items():
        known = [table[code] for table in (wireshark, impacket) if code in table]
        assert known and all(other == name for other in known), (hex(code), name, known)


def test_file_information_classes_agree_with_tshark() -> None:
    wireshark = tshark_values("smb2.file_info.infolevel") | {
        level: name
        for level, name in tshark_values("smb2.find.infolevel").items()
        if "DIRECTORY" in name  # the FIND levels that are FileXxxDirectoryInformation
    }
    compared = 0
    for level, name in wireshark.items():
        if level in rec.FILE_INFORMATION_CLASSES:
            assert squashed(rec.FILE_INFORMATION_CLASSES[level]) == squashed(name), level
            compared += 1
    assert compared >= 24
    assert rec.FILE_INFORMATION_CLASSES[rec.FileRenameInformation] == "FileRenameInformation"


def test_fs_information_classes_agree_with_tshark() -> None:
    wireshark = tshark_values("smb2.fs_info.infolevel")
    for level, name in rec.FS_INFORMATION_CLASSES.items():
        assert wireshark[level] == name


def test_dialects_and_share_types_agree_with_tshark() -> None:
    dialects = tshark_values("smb2.dialect")
    for revision, name in rec.DIALECTS.items():
        assert dialects[revision] == f"SMB {name}"
    share_types = tshark_values("smb2.share_type")
    words = {"disk": "disk", "pipe": "pipe", "print": "printer"}
    for code, name in rec.SHARE_TYPES.items():
        assert words[name] in share_types[code].lower()


def test_command_names_agree_with_impacket() -> None:
    for code, name in enumerate(rec.COMMAND_NAMES):
        assert getattr(smb3structs, f"SMB2_{name}") == code


def test_create_dispositions_and_actions_agree_with_impacket() -> None:
    for value, name in enumerate(rec.CREATE_DISPOSITIONS):
        assert getattr(smb3structs, name) == value
    for value, name in enumerate(rec.CREATE_ACTIONS):
        assert getattr(smb3structs, name) == value
    assert smb3structs.FILE_DELETE_ON_CLOSE == rec.FILE_DELETE_ON_CLOSE


def test_info_class_name_by_info_type() -> None:
    assert rec.info_class_name(1, 10) == "FileRenameInformation"
    assert rec.info_class_name(2, 2) == "FileFsLabelInformation"
    assert rec.info_class_name(3, 0) == "SMB2_0_INFO_SECURITY"
    assert rec.info_class_name(1, 250) == "250"
