"""The wire and the host joined, and the report: what they cost on a big case, in one run.

    python benchmarks/bench_story.py [CAPTURE] [--records N] [--work DIR] [--runs 3]
        (default CAPTURE: /tmp/bench/bench.pcap, made by benchmarks/make_capture.py)

1. A large host log for the capture: the Security log its servers would have written (a 4624 for
   each SMB session, a 5140 for each tree connect, a 5145 for each create or open, at the
   client's address and port, in NXLog's JSON lines with whole-second times), and unrelated
   logons of other machines until it holds ``--records`` records (default 500,000).
2. Correlation against ingest: ``smbwatch ingest`` of the capture and the log into a new case
   (a process, timed with wait4), then, in this process, the case's correlation alone run again
   over it (what ingest did as its last step; best of ``--runs``). Printed: how much the
   correlation adds to the rest of the ingest (the issue's bound: 20 %), and what it found.
3. The report: ``smbwatch report --case`` of that case (a process), and the page opened in
   Debian's Chromium (Playwright, headless, a fresh profile): the time from navigation to the
   page's script having drawn everything (``smbwatchReady``, the issue's bound: 2 s), beside
   the same for the report of the shipped example (the peer: a page with nothing to sample).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from bench_capture import run as timed  # noqa: E402  (one way to time a process, wait4)
from browser import launch  # noqa: E402  (the report's tests' Chromium)

from smbwatch.case.correlate import correlate  # noqa: E402
from smbwatch.case.store import Case  # noqa: E402
from smbwatch.diagnostics import Diagnostics  # noqa: E402
from smbwatch.options import Options  # noqa: E402
from smbwatch.pipeline import iter_events  # noqa: E402

EXAMPLE = HERE.parent / "examples" / "lateral-movement.pcap"
NXLOG_TIME = "%Y-%m-%d %H:%M:%S"


def smbwatch(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "smbwatch.cli", *map(str, args)]


def _record(number: int, micros: int, code: int, computer: str, **data: object) -> str:
    moment = datetime.fromtimestamp(micros / 1e6, UTC)
    local = moment.strftime(NXLOG_TIME)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    record = {"EventID": code, "EventTime": local, "EventReceivedTime": local, "@timestamp": stamp}
    record |= {"RecordNumber": number, "Hostname": computer, "Channel": "Security", **data}
    return json.dumps(record) + "\n"


def host_log(capture: Path, path: Path, records: int) -> int:
    """The servers' Security log of the capture's SMB traffic, and other machines' logons."""
    numbers = iter(range(1, 1 << 40))
    logons: dict[tuple[str, int, int], str] = {}
    written = 0
    first = last = None
    with path.open("w") as out:
        for e in iter_events([str(capture)], Diagnostics(), None, [], 1, Options(hashes=())):
            if e.source != "network" or e.src_ip is None or e.src_port is None:
                continue
            first, last = first or e.time, e.time
            computer = f"SRV{e.dst_ip.replace('.', '-').replace(':', '-')}.bench.local"
            key = (e.src_ip, e.src_port, e.session_id or 0)
            common = {"IpAddress": e.src_ip, "IpPort": str(e.src_port)}
            if e.action == "logon" and e.status == "STATUS_SUCCESS":
                logons[key] = f"0x{next(numbers) + 0x100000:x}"
                data = {"TargetUserName": e.user or "bench", "TargetDomainName": "BENCH"}
                data |= {"TargetLogonId": logons[key], "LogonType": "3", **common}
                out.write(_record(next(numbers), e.time, 4624, computer, **data))
            elif key in logons and e.action in ("tree_connect", "create", "open"):
                data = {"SubjectUserName": e.user or "bench", "SubjectDomainName": "BENCH"}
                data |= {"SubjectLogonId": logons[key], "ShareName": f"\\\\*\\{e.share_name}"}
                data |= {"AccessMask": hex(e.access_mask or 1), **common}
                if e.action == "tree_connect":
                    out.write(_record(next(numbers), e.time, 5140, computer, **data))
                else:
                    data["RelativeTargetName"] = e.path or e.pipe or ""
                    out.write(_record(next(numbers), e.time, 5145, computer, **data))
            else:
                continue
            written += 1
        noise = random.Random(5)
        for _ in range(max(0, records - written)):
            at = noise.randint(first or 0, last or 1)
            data = {"TargetUserName": f"user{noise.randint(1, 500)}", "TargetDomainName": "BENCH"}
            data |= {"TargetLogonId": hex(noise.randint(1, 1 << 32)), "LogonType": "3"}
            data |= {"IpAddress": f"10.99.{noise.randint(0, 255)}.{noise.randint(1, 254)}"}
            data |= {"IpPort": str(noise.randint(1024, 65535))}
            computer = f"WS{noise.randint(1, 300)}.bench.local"
            out.write(_record(next(numbers), at, 4624, computer, **data))
            written += 1
    return written


def correlation(case_dir: Path, runs: int) -> tuple[float, dict[str, int]]:
    """The best time of the case's correlation over it, and what it holds."""
    best = float("inf")
    with Case.open(case_dir, write=True) as case:
        for _ in range(runs):
            with case.transaction("bench"):
                start = time.perf_counter()
                correlate(case)
                best = min(best, time.perf_counter() - start)
        found = {
            "events linked": case.rows("SELECT count(*) FROM correlation WHERE links IS NOT NULL"),
            "events filled": case.rows(
                "SELECT count(*) FROM correlation WHERE filled_from IS NOT NULL"
            ),
            "events": case.rows("SELECT count(*) FROM event_rows"),
        }
    return best, {name: rows[0][0] for name, rows in found.items()}


def render(page_file: Path) -> float:
    """Seconds from navigation to the page's script having drawn it all, in Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(page_file.resolve().as_uri())
            while page.evaluate("window.smbwatchReady === undefined"):
                if errors:
                    raise SystemExit(f"{page_file}: {errors}")
                time.sleep(0.01)
            return page.evaluate("window.smbwatchReady") / 1000
        finally:
            browser.close()


def timings(runs: int, page: Path) -> Iterator[float]:
    for _ in range(runs):
        yield render(page)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture", nargs="?", default="/tmp/bench/bench.pcap")
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--work", type=Path, help="keep the log, case and pages here")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    capture = Path(args.capture)
    if not capture.is_file():
        raise SystemExit(f"{capture}: missing; make it with benchmarks/make_capture.py")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-story-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        log = work / "security.json"
        count = host_log(capture, log, args.records)
        print(f"capture: {capture} ({capture.stat().st_size / 1e6:.0f} MB)")
        print(f"host log: {log} ({count} records, {log.stat().st_size / 1e6:.0f} MB)")
        case_dir = work / "case"
        shutil.rmtree(case_dir, ignore_errors=True)
        size = capture.stat().st_size + log.stat().st_size
        _, ingest, _, _ = timed(
            "smbwatch ingest (all of it)",
            smbwatch("ingest", "-q", "--case", case_dir, capture, log),
            size,
        )
        seconds, found = correlation(case_dir, args.runs)
        share = seconds / (ingest - seconds)
        verdict = "within" if share <= 0.20 else "OVER"
        held = ", ".join(f"{v} {k}" for k, v in found.items())
        print(f"correlation alone: {seconds:.2f} s ({held})")
        print(f"correlation adds {share:.1%} to the rest of the ingest ({verdict} the 20% bound)")

        big = work / "report.html"
        timed(
            "smbwatch report --case", smbwatch("report", "-q", "--case", case_dir, "-o", big), size
        )
        small = work / "example.html"
        timed(
            "smbwatch report (example)",
            smbwatch("report", "-q", EXAMPLE, "-o", small),
            EXAMPLE.stat().st_size,
        )
        sizes = big.stat().st_size / 1e6, small.stat().st_size / 1e6
        print(f"report page: {sizes[0]:.1f} MB; example page {sizes[1]:.1f} MB")
        drawn = min(timings(args.runs, big))
        peer = min(timings(args.runs, small))
        verdict = "within" if drawn <= 2.0 else "OVER"
        print(
            f"drawn in Chromium: {drawn:.2f} s (example: {peer:.2f} s; ratio {drawn / peer:.1f})"
            f" ({verdict} the 2 s bound)"
        )
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
