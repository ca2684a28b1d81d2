"""The rules SMB1 and SMB2 share (smb.session): UNC paths, pipe trees, bounded tables.

The expected values are MS-SMB2's and MS-CIFS's: a TREE_CONNECT path is ``\\\\server\\share``
(MS-SMB2 2.2.9, MS-CIFS 2.2.4.55.1), a named pipe lives on ``IPC$`` and the server says a share
is a pipe share in its TREE_CONNECT response (ShareType 0x02, Service ``IPC``).
"""

from __future__ import annotations

import pytest

from smbwatch.diagnostics import Diagnostics
from smbwatch.smb.session import is_pipe_tree, remember, split_unc

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("unc", "expected"),
    [
        ("\\\\FILESRV\\IPC$", ("FILESRV", "IPC$")),
        ("\\\\10.45.0.10\\data", ("10.45.0.10", "data")),
        ("\\\\fe80::1\\C$", ("fe80::1", "C$")),
        # what follows the share's name is a path inside it, not part of the name
        ("\\\\FILESRV\\data\\sub\\dir", ("FILESRV", "data")),
        ("\\\\FILESRV\\data\\", ("FILESRV", "data")),
        # a server without a share, a share without a server: the missing part is None
        ("\\\\FILESRV", ("FILESRV", None)),
        ("\\\\FILESRV\\", ("FILESRV", None)),
        ("\\\\\\data", (None, "data")),
        ("IPC$", (None, "IPC$")),  # some clients send the bare share name
        ("", (None, None)),
        ("\\", (None, "\\")),  # not a UNC path: taken as a name, as sent
    ],
)
def test_split_unc(unc: str, expected: tuple[str | None, str | None]) -> None:
    assert split_unc(unc) == expected


@pytest.mark.parametrize(
    ("share_type", "share_name", "expected"),
    [
        ("pipe", "IPC$", True),
        ("pipe", "anything", True),  # the server's word decides
        ("disk", "IPC$", False),
        (None, "IPC$", True),  # the server's answer was not captured: the name decides
        (None, "ipc$", True),
        (None, "C$", False),
        (None, None, False),
    ],
)
def test_is_pipe_tree(share_type: str | None, share_name: str | None, expected: bool) -> None:
    assert is_pipe_tree(share_type, share_name) is expected


def test_remember_pushes_out_the_oldest_and_counts_it() -> None:
    diagnostics = Diagnostics()
    table: dict[int, str] = {}
    pushed = [remember(table, key, f"v{key}", 3, diagnostics, "kind") for key in range(5)]
    assert pushed == [None, None, None, "v0", "v1"]
    assert table == {2: "v2", 3: "v3", 4: "v4"}
    assert remember(table, 3, "again", 3, diagnostics, "kind") is None  # a key already in it
    assert table[3] == "again" and diagnostics.counts["kind"] == 2
