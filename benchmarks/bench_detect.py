"""What running every rule costs, measured against ``smbwatch events`` on the same inputs.

    python benchmarks/bench_detect.py [INPUT ...] [--rules PATH ...] [--repeat N]

Defaults: every capture and Windows log under ../shared/data and examples/, with the built-in
rules plus every rule under ../shared/sigma. In one process, on the same inputs, best of N
(CPU time, so other load on the machine matters less; the runs alternate):

- events: read and decode every input and write each event as a JSON line (to nowhere), which
  is what ``smbwatch events -f jsonl`` does;
- detect: read and decode every input and run every rule, then build the alerts, which is what
  ``smbwatch detect`` does;
- rules: the rule work alone, over the same events already decoded.

The claim: the rules add at most 20 % to the time of ``smbwatch events`` (rules / events). Rule
loading and compilation happens once per run and is shown apart. The collector runs as the
command line sets it (``cli.YOUNG_COLLECTION_EVERY``), and the events decoded once for the rule
work are frozen out of its view: a streaming ``detect`` does not hold them all. For a large
input, make one with ``benchmarks/make_capture.py --size-mb 100 --out /tmp/bench.pcap`` and
pass it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from smbwatch.cli import YOUNG_COLLECTION_EVERY
from smbwatch.detect.engine import Detector
from smbwatch.detect.sigma import load_rules
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.pipeline import iter_events

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.20


def shared_dir() -> Path:
    """$SMBWATCH_SHARED, else ../shared beside the checkout, else /work/shared."""
    for candidate in (os.environ.get("SMBWATCH_SHARED"), REPO.parent / "shared", "/work/shared"):
        if candidate and (Path(candidate) / "data").is_dir():
            return Path(candidate)
    raise SystemExit("the shared corpus is missing: set SMBWATCH_SHARED")


def best_of(repeat: int, runs: dict[str, Callable[[], object]]) -> dict[str, float]:
    """The least CPU time of each run over ``repeat`` rounds, the runs alternating."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeat):
        for name, run in runs.items():
            start = time.process_time()
            run()
            best[name] = min(best[name], time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="*", metavar="INPUT")
    parser.add_argument("--rules", action="append", metavar="PATH", help="default: shared sigma")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    shared = shared_dir()
    inputs = args.inputs or [str(shared / "data"), str(REPO / "examples")]
    rule_paths = args.rules or [str(shared / "sigma")]

    start = time.process_time()
    ruleset = load_rules(rule_paths)
    load_seconds = time.process_time() - start

    def read() -> list[SmbEvent]:
        return list(iter_events(inputs, Diagnostics(), errors=[], jobs=1))

    gc.set_threshold(YOUNG_COLLECTION_EVERY, *gc.get_threshold()[1:])
    events = read()
    gc.freeze()
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
    sink = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115

    def events_run() -> None:
        for event in iter_events(inputs, Diagnostics(), errors=[], jobs=1):
            sink.write(encode(event.to_dict()) + "\n")

    def detect_run() -> None:
        detector = Detector(ruleset)
        for event in iter_events(inputs, Diagnostics(), errors=[], jobs=1):
            detector.feed(event)
        detector.alerts()

    def rules_run() -> None:
        detector = Detector(ruleset)
        for event in events:
            detector.feed(event)
        detector.alerts()

    times = best_of(args.repeat, {"events": events_run, "detect": detect_run, "rules": rules_run})
    sources = sorted({e.source for e in events})
    alerts = Detector(ruleset)
    alerts.feed_all(events)
    print(f"inputs: {', '.join(inputs)}")
    print(f"{len(events)} events ({', '.join(sources)}), {len(ruleset.rules)} rules")
    print(f"rules loaded and compiled once in {load_seconds * 1000:.0f} ms")
    for name, seconds in times.items():
        per_event = seconds / max(1, len(events)) * 1e6
        print(f"{name:<8} {seconds:8.3f} s CPU  {per_event:7.2f} µs/event")
    added = times["rules"] / times["events"]
    verdict = "within" if added <= TARGET else "OVER"
    print(f"rules add {added:.1%} to smbwatch events ({verdict} the {TARGET:.0%} target)")
    print(f"detect / events = {times['detect'] / times['events']:.2f}")
    print(f"{len(alerts.alerts())} alerts")
    sink.close()


if __name__ == "__main__":
    main()
