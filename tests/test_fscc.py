"""The MS-FSCC name tables, checked against tshark's value strings and impacket."""

from __future__ import annotations

import pytest
from impacket import smb3structs
from oracle import tshark_values

from smbwatch.smb import fscc

pytestmark = pytest.mark.oracle


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
    for code, name in fscc.FSCTL_NAMES.items():
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
        if level in fscc.FILE_INFORMATION_CLASSES:
            assert squashed(fscc.FILE_INFORMATION_CLASSES[level]) == squashed(name), level
            compared += 1
    assert compared >= 24
    assert fscc.FILE_INFORMATION_CLASSES[fscc.FileRenameInformation] == "FileRenameInformation"


def test_fs_information_classes_agree_with_tshark() -> None:
    wireshark = tshark_values("smb2.fs_info.infolevel")
    for level, name in fscc.FS_INFORMATION_CLASSES.items():
        assert wireshark[level] == name


def test_create_dispositions_and_actions_agree_with_impacket() -> None:
    for value, name in enumerate(fscc.CREATE_DISPOSITIONS):
        assert getattr(smb3structs, name) == value
    for value, name in enumerate(fscc.CREATE_ACTIONS):
        assert getattr(smb3structs, name) == value
    assert smb3structs.FILE_DELETE_ON_CLOSE == fscc.FILE_DELETE_ON_CLOSE
