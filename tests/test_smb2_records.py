"""The name tables of smb2_records, checked against tshark's value strings and impacket."""

from __future__ import annotations

import pytest
from impacket import smb3structs
from oracle import tshark_values

from smbwatch.smb import smb2_records as rec

pytestmark = pytest.mark.oracle


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


def test_info_class_name_by_info_type() -> None:
    assert rec.info_class_name(1, 10) == "FileRenameInformation"
    assert rec.info_class_name(2, 2) == "FileFsLabelInformation"
    assert rec.info_class_name(3, 0) == "SMB2_0_INFO_SECURITY"
    assert rec.info_class_name(1, 250) == "250"
