"""The HTML report, opened in a real browser: Debian's Chromium, driven by Playwright's Python
package (its own browser download is never used), headless, with a fresh profile and no network.

In the oracle tier: the browser is the independent implementation that parses the page, enforces
its Content-Security-Policy and runs its script. What the page must show comes from the data
(tshark, the raw host records, the example's documented machines) or, for the filters, from the
JSON the page embeds, filtered here in Python.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import example_log
import pytest
from browser import launch
from conftest import shared_dir
from lab import pe_bytes
from oracle import rename_in_capture, tshark_fields
from playwright.sync_api import Browser, Page, sync_playwright
from winlog_convert import to_winlogbeat
from winlog_oracle import OracleEvent

from smbwatch.sinks import report_html

pytestmark = pytest.mark.oracle

OTRF = shared_dir() / "data" / "otrf"
PSEXEC_LOG = next(OTRF.glob("empire_psexec*.json.gz"))
PSEXEC_CAPTURE = next(OTRF.glob("empire_psexec*WORKSTATION6*.cap"))
ASSETS = Path(report_html.__file__).parent / report_html.ASSETS
# The release shipped (report_assets/README.md): npm's cytoscape@3.35.0, dist/cytoscape.min.js.
LIBRARY_SHA256 = "71fa9ebec21a7ca2c40cff6aacc30d1f6464e363662ad4b2c197e1adc770cd94"


def smbwatch(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "smbwatch.cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)


def report(out: Path, *inputs: str | Path) -> Path:
    done = smbwatch("report", "-q", *inputs, "-o", out)
    assert done.returncode == 0, done.stderr
    return out


def embedded(path: Path) -> dict[str, Any]:
    """The JSON the page carries, read here without the page's script."""
    found = re.search(
        r'<script type="application/json" id="smbwatch-data">(.*?)</script>', path.read_text(), re.S
    )
    assert found
    return json.loads(found.group(1))


@dataclass
class Opened:
    page: Page
    console: list[tuple[str, str]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    seconds: float = 0.0


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = launch(playwright)
        yield launched
        launched.close()


def open_page(browser: Browser, path: Path) -> Opened:
    """The page loaded and drawn (its script sets ``smbwatchReady`` when done)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})  # a fresh profile
    page = context.new_page()
    opened = Opened(page)
    page.on("console", lambda m: opened.console.append((m.type, m.text)))
    page.on("pageerror", lambda e: opened.console.append(("pageerror", str(e))))
    page.on("request", lambda r: opened.requests.append(r.url))
    start = time.monotonic()
    page.goto(path.resolve().as_uri())
    while page.evaluate("window.smbwatchReady === undefined"):
        assert time.monotonic() - start < 20, opened.console
        time.sleep(0.02)
    opened.seconds = time.monotonic() - start
    return opened


def graph(page: Page) -> tuple[set[str], set[tuple[str, str]]]:
    """The hosts and the moves (client, server) the graph draws."""
    nodes = page.evaluate("window.smbwatchCy.nodes().map(n => n.data('label'))")
    edges = page.evaluate(
        "window.smbwatchCy.edges().map(e => [e.source().data('label'), e.target().data('label')])"
    )
    return set(nodes), {tuple(e) for e in edges}


def click_edge(opened: Opened, index: int = 0) -> None:
    """A real mouse click on a drawn edge, beside its label."""
    x, y = opened.page.evaluate(
        """(i) => { const e = window.smbwatchCy.edges()[i]; const p = e.renderedMidpoint();
        const r = document.getElementById('cy').getBoundingClientRect();
        const s = e.sourceEndpoint(), t = e.targetEndpoint();
        const f = 0.25 * e.cy().zoom();  // a quarter of the way along: off the label
        return [r.left + p.x + (s.x - t.x) * f, r.top + p.y + (s.y - t.y) * f]; }""",
        index,
    )
    opened.page.mouse.click(x, y)


def test_the_shipped_library_is_the_pinned_release_with_its_licence() -> None:
    library = (ASSETS / report_html.LIBRARY).read_bytes()
    assert hashlib.sha256(library).hexdigest() == LIBRARY_SHA256
    assert "The Cytoscape Consortium" in (ASSETS / "cytoscape.LICENSE").read_text()
    assert LIBRARY_SHA256 in (ASSETS / "README.md").read_text()


def test_a_real_attack_loads_cleanly_and_shows_its_hosts_and_move(
    browser: Browser, tmp_path: Path
) -> None:
    page_file = report(tmp_path / "psexec.html", PSEXEC_LOG, PSEXEC_CAPTURE)
    with gzip.open(PSEXEC_LOG, "rt") as lines:
        (install,) = [r for r in map(json.loads, lines) if r.get("EventID") == 4697]
    created = "dcerpc.pkt_type == 0 && dcerpc.opnum == 24"
    ((client,),) = set(tshark_fields(PSEXEC_CAPTURE, created, ["ip.src"]))
    opened = open_page(browser, page_file)
    assert opened.console == []  # no error, no warning
    assert opened.requests == [page_file.resolve().as_uri()]  # nothing but the file itself
    hosts, moves = graph(opened.page)
    assert hosts == {client, install["Hostname"]}
    assert moves == {(client, install["Hostname"])}
    click_edge(opened)
    detail = opened.page.inner_text("#edge-detail")
    assert f"{client} → {install['Hostname']}" in detail
    assert "CreateServiceA" in detail and install["ServiceName"] in detail  # filled from the 4697
    assert opened.console == []


def test_the_example_shows_its_path_of_two_hops(browser: Browser, tmp_path: Path) -> None:
    log = example_log.write(tmp_path / "security.json")
    opened = open_page(browser, report(tmp_path / "example.html", example_log.EXAMPLE, log))
    assert opened.console == []
    hosts, moves = graph(opened.page)
    assert hosts == {"WKSTN01", "FILESRV", "BACKUP01"}  # examples/README.md
    assert moves == {("WKSTN01", "FILESRV"), ("FILESRV", "BACKUP01")}
    opened.page.click("nav button[data-section=incidents]")
    paths = opened.page.locator("details.incident .path").all_inner_texts()
    assert "WKSTN01 → FILESRV → BACKUP01" in paths
    opened.page.click("nav button[data-section=files]")
    files = opened.page.inner_text("#file-list")
    sha256 = hashlib.sha256(pe_bytes("PSEXESVC", 8192)).hexdigest()  # record_example.py
    assert sha256 in files and "FILESRV → BACKUP01" in files  # the payload, one hop on


def test_the_timeline_filters_by_host_user_and_time(browser: Browser, tmp_path: Path) -> None:
    page_file = report(tmp_path / "example.html", example_log.EXAMPLE)
    rows = embedded(page_file)["timeline"]["rows"]
    opened = open_page(browser, page_file)
    page = opened.page
    page.click("nav button[data-section=timeline]")

    def shown() -> int:
        return int(page.inner_text("#timeline-count").split()[0])

    assert shown() == len(rows) == page.locator("tr.event").count()  # under a page of 500
    page.select_option("#filter-host", "BACKUP01")
    backup = [r for r in rows if "BACKUP01" in (r["src"], r["dst"])]
    assert shown() == len(backup) > 0
    assert page.locator("tr.event").count() == min(len(backup), 500)
    page.select_option("#filter-host", "")
    page.select_option("#filter-user", "LAB\\Administrator")
    assert shown() == len([r for r in rows if r["user"] == "LAB\\Administrator"]) > 0
    page.select_option("#filter-user", "")
    middle = rows[len(rows) // 2]["time"]
    page.fill("#filter-since", middle)
    page.press("#filter-since", "Enter")
    page.dispatch_event("#filter-since", "change")
    assert shown() == len([r for r in rows if r["time"] >= middle]) < len(rows)
    assert opened.console == []


HOSTILE_FILE = "</script><b>"  # the length of psexesvc.exe: renamed in the capture's frames
HOSTILE_PATH = '<img src=x onerror="window.pwned=1">'
HOSTILE_USER = "<script>window.pwned=2</script>"


def test_hostile_names_are_shown_as_text(browser: Browser, tmp_path: Path) -> None:
    capture = tmp_path / "hostile.pcap"
    rename_in_capture(example_log.EXAMPLE, capture, "psexesvc.exe", HOSTILE_FILE)
    records = example_log.records(capture)
    for record in records:
        if record.data.get("RelativeTargetName") == "invoice.txt":
            record.data["RelativeTargetName"] = HOSTILE_PATH
        if "TargetUserName" in record.data:
            record.data["TargetUserName"] = HOSTILE_USER
    log = tmp_path / "security.json"
    log.write_text("".join(json.dumps(example_log.to_winlogbeat(r)) + "\n" for r in records))
    page_file = report(tmp_path / "hostile.html", capture, log)
    source = page_file.read_text()
    for name in (HOSTILE_FILE, HOSTILE_PATH, HOSTILE_USER):
        assert name not in source  # escaped in the JSON: no </script>, no markup
    opened = open_page(browser, page_file)
    page = opened.page
    assert opened.console == [] and page.evaluate("window.pwned") is None
    made = "document.querySelectorAll('b, img, svg, iframe').length + document.scripts.length"
    assert page.evaluate(made) == 3  # the page's own three scripts, nothing a name made
    page.click("nav button[data-section=files]")
    assert HOSTILE_FILE in page.inner_text("#file-list")
    page.click("nav button[data-section=timeline]")
    timeline = page.inner_text("#timeline-table")
    assert HOSTILE_FILE in timeline and HOSTILE_PATH in timeline
    page.select_option("#filter-user", "LAB\\" + HOSTILE_USER)
    assert int(page.inner_text("#timeline-count").split()[0]) > 0
    assert page.evaluate("window.pwned") is None and opened.console == []


def test_script_json_cannot_end_its_element() -> None:
    text = report_html.script_json({"name": "</script><!--<script>alert(1)</script>&\u2028"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text)["name"] == "</script><!--<script>alert(1)</script>&\u2028"


NOISE_LOGONS = 3200  # more than a page's 3,000 timeline rows and 300 moves


def test_a_big_case_is_cut_to_what_a_page_holds(browser: Browser, tmp_path: Path) -> None:
    """The example and its servers' logs among 3,200 other machines' logons: the page keeps the
    incidents' moves first and every event their alerts name, and says what it left out."""
    records = example_log.records()
    noise = [
        OracleEvent(
            event_id=4624,
            record_id=100_000 + i,
            system_time=records[0].system_time,
            computer=f"WS{i:04}.noise.lab",
            provider=example_log.SECURITY,
            channel="Security",
            data={
                "TargetUserName": f"user{i}",
                "TargetDomainName": "NOISE",
                "TargetLogonId": hex(0x10000 + i),
                "LogonType": "3",
                "IpAddress": f"10.99.{i // 250}.{i % 250 + 1}",
                "IpPort": "50000",
            },
            chunk=None,
            parser="test",
        )
        for i in range(NOISE_LOGONS)
    ]
    log = tmp_path / "security.json"
    log.write_text("".join(json.dumps(to_winlogbeat(e)) + "\n" for e in records + noise))
    alone = embedded(
        report(
            tmp_path / "alone.html",
            example_log.EXAMPLE,
            example_log.write(tmp_path / "example.json"),
        )
    )
    big_file = report(tmp_path / "big.html", example_log.EXAMPLE, log)
    big = embedded(big_file)
    hops = {("WKSTN01", "FILESRV"), ("FILESRV", "BACKUP01")}  # examples/README.md
    assert big["edges_total"] == NOISE_LOGONS + len(hops)
    assert len(big["edges"]) == 300
    assert {(e["src"], e["dst"]) for e in big["edges"][: len(hops)]} == hops
    # the others in the README's order: more than logons first, then the busiest, the earliest
    rest = [
        (set(e["moves"]) == {"logon"}, -sum(e["moves"].values()), e["first"], e["src"], e["dst"])
        for e in big["edges"][len(hops) :]
    ]
    assert rest == sorted(rest) and len({key[3:] for key in rest}) == len(rest)
    timeline = big["timeline"]
    assert timeline["sampled"] and len(timeline["rows"]) == 3000
    assert timeline["total"] == alone["timeline"]["total"] + NOISE_LOGONS
    kept = {(r["file"], r["ref"]) for r in timeline["rows"]}
    moves = {
        (r["file"], r["ref"])
        for r in alone["timeline"]["rows"]
        if r["source"] == "network" and r["move"] not in (None, "logon")  # the same capture
    }
    assert moves and moves <= kept
    named = {
        (e["source_file"], e["source_ref"])
        for a in big["alerts"]
        if a["risk_score"] >= 25  # README: the report
        for e in a["evidence"]
    }
    assert named <= kept
    opened = open_page(browser, big_file)
    assert opened.console == []
    assert opened.page.evaluate("window.smbwatchCy.edges().length") == 80  # report.js GRAPH_EDGES
    assert str(NOISE_LOGONS + len(hops)) in opened.page.inner_text("#graph-note")
    opened.page.click("nav button[data-section=timeline]")
    assert f"3000 of {timeline['total']} events" in opened.page.inner_text("#timeline-note")
