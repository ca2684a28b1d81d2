"""The rules SMB1 and SMB2 share (smb.session): UNC paths, pipe trees, bounded tables.

The expected values are MS-SMB2's and MS-CIFS's: a TREE_CONNECT path is ``\\\\server\\share``
(MS-SMB2 2.2.9, MS-CIFS 2.2.4.55.1), a named pipe lives on ``IPC$`` and the server says a share
is a pipe share in its TREE_CONNECT response (ShareType 0x02, Service ``IPC``).
"""

from __future__ import annotations

import pytest
from dcerpc_capture import bind_pdu

from smbwatch.diagnostics import Diagnostics
from smbwatch.filedata.transfers import Transfers
from smbwatch.options import Options
from smbwatch.smb.session import OpenFile, Tree, is_pipe_tree, remember, split_unc

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


SVCCTL = ("367ABB81-9844-35F1-AD32-98F038001003", "2.0")


def opened(tree: Tree | None = None) -> tuple[OpenFile, Tree | None]:
    """An open of ``svcctl`` as the decoders make it when the tree does not say it is a pipe."""
    file = OpenFile(b"\x01" * 16, "01" * 16, 7, 3, "svcctl", None)
    file.opened(Diagnostics(), 0)
    return file, tree


def test_a_bind_written_first_makes_the_open_a_pipe() -> None:
    file, tree = opened()
    assert file.pipe_by_bind(bind_pdu(*SVCCTL), 0, tree, Diagnostics()) == "svcctl"
    assert (file.pipe, file.data) == ("svcctl", None) and file.rpc is not None
    assert file.pipe_by_bind(bind_pdu(*SVCCTL), 0, tree, Diagnostics()) is None  # once


@pytest.mark.parametrize(
    "why",
    ["a disk share", "a printer share", "not a bind", "data went to it", "a bind further on"],
)
def test_what_a_bind_does_not_make_a_pipe(why: str) -> None:
    share_type = {"a disk share": "disk", "a printer share": "print"}.get(why)
    file, tree = opened(Tree("\\\\S\\C$", "C$", "S", share_type) if share_type else None)
    data, start = bind_pdu(*SVCCTL), 0
    if why == "not a bind":
        data = data[:2] + b"\x00" + data[3:]  # a REQUEST (packet type 0)
    elif why == "a bind further on":
        data, start = b"MZ" + data, 0
    elif why == "data went to it":
        tracker = Transfers(Options(), Diagnostics()).tracker()
        assert file.data is not None
        tracker.data(True, file.data, 0, 2, b"MZ", 0, 0, 1, 1)
    assert file.pipe_by_bind(data, start, tree, Diagnostics()) is None
    assert file.pipe is None and file.rpc is None and file.data is not None
