"""DCE/RPC straight over TCP (PsExec's svcctl on a dynamic port), through the whole pipeline.

The expectations are Suricata's own for the same capture (test.yaml), read from the file.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from smbwatch.diagnostics import Diagnostics
from smbwatch.pipeline import capture_events

pytestmark = pytest.mark.unit


def test_psexec_svcctl_over_tcp_matches_suricata(shared_data: Path) -> None:
    folder = shared_data / "suricata-verify" / "dcerpc-dce-iface-01"
    expected: Counter[str] = Counter()
    for check in yaml.safe_load((folder / "test.yaml").read_text())["checks"]:
        match = check["filter"]["match"]
        if match.get("dcerpc.interfaces[0].service") == "svcctl":
            expected[match["dcerpc.interfaces[0].procedure"]] += check["filter"]["count"]
    assert sum(expected.values()) >= 19
    diagnostics = Diagnostics()
    events = list(capture_events(str(next(folder.glob("*.pcap"))), diagnostics))
    calls = [e for e in events if e.action == "rpc_call" and e.rpc_opnum is not None]
    assert Counter(e.rpc_operation for e in calls) == expected
    assert all(e.rpc_interface == "svcctl" and e.dst_port == 49155 for e in calls)
    assert all(e.encrypted for e in calls), "packet privacy: operations known, arguments sealed"
    create = next(e for e in calls if e.rpc_operation == "CreateServiceWOW64W")
    assert create.rpc_opnum == 45 and create.src_ip == "192.168.10.31"
    assert not diagnostics.counts
