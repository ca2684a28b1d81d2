"""The SMB1 decoder on the real captures of the shared corpus, against two independent oracles:
what Suricata's suricata-verify tests expect (read from their test.yaml), and tshark."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from oracle import tshark_fields
from smb1_support import ENDPOINTS, replay, smb1_connections, smb1_events

from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.smb.fscc import CREATE_ACTIONS
from smbwatch.smb.session import SNIFF_WINDOW
from smbwatch.smb.smb1 import Smb1Decoder

pytestmark = pytest.mark.oracle

SMB1_CAPTURES = (
    "smb1-02/smb1_osx.pcap",
    "filestore-filecontainer-smb1-data-offset/input.pcap",
    "smb-eicar-file-segmentation-random/input.pcap",
    "smb2-ntlmssp-negotiateflags/input.pcap",  # an SMB1 session to a browser beside SMB2
)

# Suricata's smb.* keys and the event field that carries the same value
SURICATA_FIELDS = {
    "smb.dialect": "dialect",
    "smb.status": "status",
    "smb.filename": "path",
    "smb.share": "share",
    "smb.named_pipe": "pipe",
    "smb.ntlmssp.user": "user",
    "smb.ntlmssp.domain": "domain",
    "smb.ntlmssp.host": "workstation",
}
# Suricata keys with no counterpart in the event contract (record ids, raw codes, OS strings,
# the offered dialects, its 65535 "no tree" and session ids it comments out itself)
NOT_IN_CONTRACT = {
    "smb.id",
    "smb.status_code",
    "smb.server_guid",
    "smb.client_dialects[0]",
    "smb.request.native_os",
    "smb.request.native_lm",
    "smb.response.native_os",
    "smb.response.native_lm",
    "smb.tree_id",
    "smb.session_id",
}


def suricata_command(name: str) -> str:
    """Suricata's SMB1_COMMAND_X as the MS-CIFS name SMB_COM_X."""
    return "SMB_COM_" + name.removeprefix("SMB1_COMMAND_").removesuffix("_PROTOCOL")


def smb1_expectations(test_yaml: Path) -> list[dict[str, object]]:
    """The ``event_type: smb`` matches of a test.yaml that are about SMB1."""
    checks = yaml.safe_load(test_yaml.read_text())["checks"]
    found = []
    for check in checks:
        match = check.get("filter", {}).get("match", {})
        if match.get("event_type") != "smb":
            continue
        command = str(match.get("smb.command", ""))
        if command.startswith("SMB1_") or match.get("smb.dialect") == "NT LM 0.12":
            found.append(match)
    return found


@pytest.mark.parametrize("capture", SMB1_CAPTURES)
def test_what_suricata_expects_is_in_the_events(shared_data: Path, capture: str) -> None:
    pcap = shared_data / "suricata-verify" / capture
    expectations = smb1_expectations(pcap.parent / "test.yaml")
    events, diagnostics = smb1_events(pcap)
    assert events, f"no SMB1 event from {capture}"
    for match in expectations:
        wanted = {}
        for key, value in match.items():
            if key in ("event_type", "smb.command") or key in NOT_IN_CONTRACT:
                continue
            assert key in SURICATA_FIELDS, f"{capture}: Suricata key {key} is not mapped"
            wanted[SURICATA_FIELDS[key]] = value
        command = suricata_command(str(match["smb.command"]))
        found = [
            e
            for e in events
            if e.command == command and all(getattr(e, k) == v for k, v in wanted.items())
        ]
        assert found, f"{capture}: no {command} event with {wanted}"
    assert "decoder_error" not in diagnostics.counts


def test_the_suricata_expectations_are_not_vacuous(shared_data: Path) -> None:
    tests = [shared_data / "suricata-verify" / c for c in SMB1_CAPTURES]
    expectations = [m for t in tests for m in smb1_expectations(t.parent / "test.yaml")]
    statuses = {m.get("smb.status") for m in expectations}
    assert {"STATUS_SUCCESS", "STATUS_MORE_PROCESSING_REQUIRED", "SRV_BADUID"} <= statuses
    assert any(m.get("smb.dialect") == "NT LM 0.12" for m in expectations)


# --- tshark, command by command ----------------------------------------------------------------

FIELDS = (
    "smb.cmd",
    "smb.flags.response",
    "smb.mid",
    "smb.tid",
    "smb.fid",
    "smb.file",
    "smb.path",
    "smb.nt_status",
    "smb.error_class",
    "smb.create.action",
    "smb.end_of_file",
    "smb.offset",
    "smb.offset_high",
    "smb.data_len_low",
    "smb.data_len_high",
    "smb.count_low",
    "smb.count_high",
    "_ws.col.Info",
)
COMMANDS = {
    0x75: "SMB_COM_TREE_CONNECT_ANDX",
    0xA2: "SMB_COM_NT_CREATE_ANDX",
    0x2F: "SMB_COM_WRITE_ANDX",
    0x2E: "SMB_COM_READ_ANDX",
}
DOS_CLASSES = {"0x01": "DOS_", "0x02": "SRV_", "0x03": "HRD_"}


# The commands each message field of tshark's belongs to. In an AndX chain tshark gives the
# fields of all its commands in one row; a field goes to the one command of the chain it can
# belong to, and is left out where two could own it.
FIELD_OWNERS = {
    "smb.path": {0x75, 0xA2},
    "smb.fid": {0xA2, 0x2F, 0x2E},
    "smb.file": {0xA2, 0x2F, 0x2E},
    "smb.create.action": {0xA2},
    "smb.end_of_file": {0xA2},
    "smb.offset": {0x2F, 0x2E},
    "smb.offset_high": {0x2F, 0x2E},
    "smb.data_len_low": {0x2F, 0x2E},
    "smb.data_len_high": {0x2F, 0x2E},
    "smb.count_low": {0x2F},
    "smb.count_high": {0x2F},
}


def tshark_rows(pcap: Path) -> list[dict[str, str]]:
    """tshark's view of every SMB1 TREE_CONNECT/NT_CREATE/WRITE/READ_ANDX it decodes, one row
    per command (an AndX chain gives several).

    A field that occurs more than once in a frame (a path tshark tracks and one in the message)
    comes joined with ``,``; the message's own is the last.
    """
    display_filter = " || ".join(f"smb.cmd == 0x{c:02x}" for c in COMMANDS)
    rows = []
    for values in tshark_fields(pcap, display_filter, FIELDS):
        row = {
            k: v.rsplit(",", 1)[-1] if k != "_ws.col.Info" else v
            for k, v in zip(FIELDS, values, strict=True)
        }
        chain = [c for c in dict.fromkeys(int(c, 16) for c in values[0].split(",")) if c != 0xFF]
        for command in chain:
            if command not in COMMANDS:
                continue
            part = dict(row, **{"smb.cmd": f"0x{command:02x}"})
            for field, owners in FIELD_OWNERS.items():
                if command not in owners or len(owners.intersection(chain)) > 1:
                    part[field] = ""
            rows.append(part)
    return rows


def _number(row: dict[str, str], low: str, high: str, shift: int) -> int:
    return int(row[low] or 0) + (int(row[high] or 0) << shift)


def expected_status(row: dict[str, str]) -> Callable[[str | None], bool]:
    """What the status of a response must be: tshark's NT status name, or its DOS error class."""
    if row["smb.nt_status"]:
        if int(row["smb.nt_status"], 16) == 0:
            return lambda status: status == "STATUS_SUCCESS"
        named = re.search(r"Error: (STATUS_[A-Z0-9_]+)", row["_ws.col.Info"])
        name = named.group(1) if named else f"0x{int(row['smb.nt_status'], 16):08X}"
        return lambda status: status == name
    prefix = DOS_CLASSES[row["smb.error_class"]]
    return lambda status: status is not None and status.startswith(prefix)


def expected_fields(row: dict[str, str]) -> dict[str, Callable[[object], bool]]:
    """Per event field, a test of its value, from what tshark decoded of one message."""
    command = int(row["smb.cmd"], 16)
    response = row["smb.flags.response"] == "1"
    tests: dict[str, Callable[[object], bool]] = {
        "command": lambda v: v == COMMANDS[command],
        "message_id": lambda v: v == int(row["smb.mid"]),
    }

    def equal(field: str, value: object) -> None:
        tests[field] = lambda v: v == value

    if row["smb.fid"]:
        tests["file_id"] = lambda v: v is not None and int(str(v), 16) == int(row["smb.fid"], 16)
    if row["smb.file"]:
        equal("path", row["smb.file"].lstrip("\\"))
    if command in (0x75, 0xA2) and row["smb.path"]:
        equal("share", row["smb.path"])
    if response:
        tests["status"] = expected_status(row)  # type: ignore[assignment]
        if command == 0x75 and row["smb.nt_status"] in ("", "0x00000000"):
            equal("tree_id", int(row["smb.tid"]))
        if command == 0xA2 and row["smb.create.action"]:
            equal("create_action", CREATE_ACTIONS[int(row["smb.create.action"])])
            equal("file_size", int(row["smb.end_of_file"]))
        if command == 0x2F and row["smb.count_low"]:
            equal("bytes", _number(row, "smb.count_low", "smb.count_high", 16))
        if command == 0x2E and row["smb.data_len_low"]:
            equal("bytes", _number(row, "smb.data_len_low", "smb.data_len_high", 16))
    elif command in (0x2F, 0x2E):
        equal("offset", _number(row, "smb.offset", "smb.offset_high", 32))
        if command == 0x2F:
            equal("bytes", _number(row, "smb.data_len_low", "smb.data_len_high", 16))
    return tests


def assert_same_as_tshark(pcap: Path, events: list[SmbEvent]) -> int:
    """Every message tshark decodes has its event with the same values; how many were checked.

    Requests and responses each take their own event, so that repeated MIDs count too.
    """
    rows = tshark_rows(pcap)
    pools = {True: list(events), False: list(events)}
    for row in rows:
        tests = expected_fields(row)
        pool = pools[row["smb.flags.response"] == "1"]
        match = next(
            (e for e in pool if all(test(getattr(e, f)) for f, test in tests.items())), None
        )
        assert match is not None, f"{pcap.name}: no event for tshark's {row}"
        pool.remove(match)
    return len(rows)


@pytest.mark.parametrize("capture", SMB1_CAPTURES[1:])  # smb1-02 has none of these commands
def test_same_paths_shares_statuses_and_sizes_as_tshark(shared_data: Path, capture: str) -> None:
    pcap = shared_data / "suricata-verify" / capture
    events, _ = smb1_events(pcap)
    assert assert_same_as_tshark(pcap, events) > 0


def test_tshark_comparison_covers_every_command(shared_data: Path) -> None:
    seen = set()
    for capture in SMB1_CAPTURES:
        seen |= {row["smb.cmd"] for row in tshark_rows(shared_data / "suricata-verify" / capture)}
    assert seen == {f"0x{c:02x}" for c in COMMANDS}


def test_dropped_executable_and_the_service_that_runs_it(shared_data: Path) -> None:
    """PsExec-style: a PE written to C$ over SMB1, then svcctl CreateServiceW on a pipe."""
    pcap = shared_data / "suricata-verify" / SMB1_CAPTURES[1]
    events, _ = smb1_events(pcap)
    ((frame, binary_path, service),) = tshark_fields(
        pcap,
        "svcctl.opnum == 12 && dcerpc.pkt_type == 0",
        ["frame.number", "svcctl.binarypathname", "svcctl.servicename"],
    )
    (created,) = [e for e in events if e.rpc_operation == "CreateServiceW"]
    assert created.source_ref == int(frame)
    assert (created.pipe, created.share_name, created.rpc_status) == (
        "svcctl",
        "IPC$",
        "ERROR_SUCCESS",
    )
    assert created.rpc_args is not None
    assert (created.rpc_args["binary_path"], created.rpc_args["service_name"]) == (
        binary_path,
        service,
    )
    executable = binary_path.split()[0].removeprefix("C:\\")
    drops = [e for e in events if e.action == "write" and e.path == executable]
    assert drops and {e.share_name for e in drops} == {"C$"}
    assert [e.magic for e in drops if e.offset == 0] == ["PE"]
    assert max(e.time for e in drops) < created.time


@pytest.mark.parametrize(
    "capture",
    ["smb2-06/20171220_smb_net_user.pcap", "smb2-ntlmssp-order/smb2.pcap"],
)
def test_an_smb1_negotiate_answered_in_smb2_is_no_smb1_event(
    shared_data: Path, capture: str
) -> None:
    """The multi-protocol negotiate: an SMB1 NEGOTIATE that an SMB2 server answers in SMB2."""
    pcap = shared_data / "suricata-verify" / capture
    probes = tshark_fields(pcap, "smb.cmd == 0x72", ["smb.flags.response"])
    answers = tshark_fields(pcap, "smb2.cmd == 0 && smb2.flags.response == 1", ["smb2.dialect"])
    assert probes and all(flag == ("0",) for flag in probes) and answers
    events, diagnostics = smb1_events(pcap)
    assert events == []
    assert not any(kind.startswith("smb1_") for kind in diagnostics.counts)


def test_wanted_keeps_file_data_out_and_pipe_data_in(shared_data: Path) -> None:
    """A WRITE_ANDX to a file is kept to its sniff window; one to a named pipe whole."""
    (connection,) = smb1_connections(shared_data / "suricata-verify" / SMB1_CAPTURES[1])
    events, _ = replay(connection)
    to_pipe = {e.source_ref: e.pipe is not None for e in events if e.action == "write"}
    decoder = Smb1Decoder(ENDPOINTS, Diagnostics())
    kept: dict[bool, list[tuple[int, int]]] = {True: [], False: []}
    for m in connection:
        if m.from_client and m.data[4] == 0x2F:
            wanted = decoder.wanted(True, m.data[:512], len(m.data))
            kept[to_pipe[m.frame]].append((wanted, len(m.data)))
        decoder.message(m.from_client, m.data, len(m.data), m.time, m.frame)
    assert kept[True] and all(wanted == total for wanted, total in kept[True])
    assert len(kept[False]) > 50  # header, words and padding, then the sniff window at most
    assert all(wanted <= min(total, 128 + SNIFF_WINDOW) for wanted, total in kept[False])
    assert sum(total - wanted for wanted, total in kept[False]) > 200_000
