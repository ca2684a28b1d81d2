"""The information-level names of smb1_records, checked against tshark's value strings."""

from __future__ import annotations

import re

import pytest
from oracle import tshark_values

from smbwatch.smb import smb1_records as rec

pytestmark = pytest.mark.oracle


def squashed(name: str) -> str:
    """``SMB_QUERY_FILE_BASIC_INFO`` and ``Query File Basic Info`` alike: ``queryfilebasicinfo``."""
    return re.sub("[^a-z0-9]", "", name.lower()).removeprefix("smb")


@pytest.mark.parametrize(
    ("levels", "field"),
    [(rec.QUERY_LEVELS, "smb.qpi_loi"), (rec.QUERY_FS_LEVELS, "smb.qfsi_loi")],
    ids=["query", "query_fs"],
)
def test_query_levels_agree_with_tshark(levels: dict[int, str], field: str) -> None:
    wireshark = tshark_values(field)
    for level, name in levels.items():
        assert squashed(wireshark[level]) == squashed(name), (hex(level), name)


def test_a_pass_through_level_is_named_by_its_class() -> None:
    assert rec.level_name(1004, rec.QUERY_LEVELS, {4: "FileBasicInformation"}) == (
        "FileBasicInformation"
    )
    assert rec.level_name(0x0107, rec.QUERY_LEVELS, {}) == "SMB_QUERY_FILE_ALL_INFO"
    assert rec.level_name(0x0301, rec.QUERY_LEVELS, {}) == "0x0301"
    assert rec.level_name(1999, rec.QUERY_LEVELS, {}) == "1999"
