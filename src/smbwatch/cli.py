"""The command line: verbs, their arguments, and the wiring from inputs to sinks.

Exit codes: ``smbwatch.exits`` (the README's table, and every verb's ``--help``). The case's
verbs (ingest, query, timeline, ``--case``) are wired in ``cli_case``.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from smbwatch import __version__, cli_case
from smbwatch.capture import tcp
from smbwatch.case import CaseError
from smbwatch.diagnostics import Diagnostics, InputError
from smbwatch.exits import (
    EXIT_ALERTS,
    EXIT_CODES,
    EXIT_DAMAGED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
)
from smbwatch.interrupt import Interrupted
from smbwatch.interrupt import install as install_interrupt
from smbwatch.options import DEFAULT_HASHES, HASHES, Options
from smbwatch.pipeline import iter_events, iter_lines
from smbwatch.sinks import OutputError
from smbwatch.sinks.output import FORMATS, TEXT_FORMATS, Output, RowKind
from smbwatch.sinks.progress import ReadingProgress, shown

# Arrow's buffers from the C library's allocator, unless the user chose one: Arrow's own
# (mimalloc) keeps what a buffer grown by doubling let go, and a case's alerts, stored as Arrow
# (17 MB of them for the 593-file corpus), took 81 MB so and 35 MB this way. Peaks in the same
# time: detect of that corpus 263 -> 244-247 MB, detect over its case 366-389 -> 322-327 MB,
# timeline of the 1.1 GB capture 277-279 -> 248-251 MB. Read by pyarrow when first imported,
# which no import above does.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

if TYPE_CHECKING:
    from smbwatch.detect.alert import Alert
    from smbwatch.detect.incidents import Incident
    from smbwatch.detect.sigma import RuleSet
    from smbwatch.sinks.parquet import ParquetParts

DESCRIPTION = """\
smbwatch shows lateral movement over SMB. From packet captures (pcap, pcapng) and
Windows event logs (EVTX, XML, JSON, Splunk text), also gzip-compressed or zipped,
it reports every SMB event in one event model (who reached which share and file,
how, when) and raises detections (built-in and your own Sigma rules, on both)."""
# Objects allocated between young collections (Python's default: 700). Decoding allocates
# millions of short-lived objects and holds thousands of events while their files' digests
# are computed; at 700 the collector walks those held events over and over (a tenth of a
# second per gigabyte), for cycles that are rare and small.
YOUNG_COLLECTION_EVERY = 10_000
# Young collections between collections of the middle generation (Python's default: 10). A
# connection's state (a dozen or more objects the collector tracks) outlives a young collection
# but usually not 300 of them: at 10, a million short connections had each connection walked
# in the middle generation, then again in full collections, a third of the run's time. Nearly
# everything smbwatch lets go of is freed by reference counts (a run's collections find a few
# thousand objects in cycles), so collecting them less often holds nothing back.
OLDER_COLLECTION_EVERY = 300
INPUT_FORMATS = ("pcap", "pcapng", "evtx", "xml", "json", "splunk", "smbwatch", "parquet")
# The detection verbs import pySigma when they run: ``events`` starts without it (0.15 s less).


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors in one line with the documented exit code."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"smbwatch: error: {message}\n")


def build() -> str:
    """How this installation runs its packet path: compiled by mypyc (setup.py) or as source."""
    return "pure Python" if tcp.__file__.endswith(".py") else "compiled"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="smbwatch",
        description=DESCRIPTION,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"smbwatch {__version__} ({build()})"
    )
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    events = verbs.add_parser(
        "events",
        help="every SMB event in captures and Windows logs",
        description="Report every SMB event (who reached which share and file, how, when).",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_input_arguments(events, required=False)
    cli_case.add_case_argument(events)
    cli_case.add_clock_argument(events)
    cli_case.add_filter_arguments(events)
    _add_output_arguments(events, FORMATS)
    _add_hash_arguments(events)
    events.add_argument(
        "--extract-files",
        metavar="DIR",
        help="store each completely seen file in DIR, named by its sha256, with a JSON sidecar",
    )
    events.add_argument(
        "--engine",
        choices=("local", "dask"),
        default="local",
        help="who reads the inputs: this machine's processes (-j), or a Dask cluster started"
        " here with -j worker processes (default: local)",
    )
    events.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="read the inputs on the existing Dask cluster whose scheduler is at ADDRESS"
        " (tcp://HOST:8786); inputs may then be fsspec URLs (s3://bucket/captures/)",
    )
    events.set_defaults(run=run_events)
    detect_verb = _add_rules_verb(
        verbs,
        "detect",
        "run the detection rules over captures and Windows logs",
        "Run the built-in and your Sigma rules over the events; write the alerts.",
    )
    _add_output_arguments(detect_verb)
    detect_verb.set_defaults(run=run_detect)
    incidents = _add_rules_verb(
        verbs,
        "incidents",
        "the alerts grouped into incidents: moves from a host to a host, highest risk first",
        "Run the rules as detect does and list the incidents they make up: one per source "
        "host, target host and burst of activity, with the path of a move that continued from "
        "the target.",
    )
    _add_output_arguments(incidents)
    incidents.set_defaults(run=run_incidents)
    report = _add_rules_verb(
        verbs,
        "report",
        "one self-contained HTML page: hosts and moves, incidents, alerts, timeline, files",
        "Write the case (or the inputs, merged as a case) as one HTML page to open offline: a "
        "graph of hosts and the moves between them, the incidents and alerts with their "
        "evidence, a timeline to filter, the files that crossed the wire.",
    )
    report.add_argument(
        "-o", "--output", metavar="FILE", required=True, help="the HTML file to write"
    )
    report.set_defaults(run=run_report)
    rules = verbs.add_parser("rules", help="the detection rules")
    rules_verbs = rules.add_subparsers(dest="rules_verb", required=True, parser_class=_Parser)
    rules_list = rules_verbs.add_parser(
        "list", help="the rules loaded and where from", description="List the loaded rules."
    )
    _add_rules_argument(rules_list)
    _add_output_arguments(rules_list)
    rules_list.add_argument("-q", "--quiet", action="store_true", help="no warnings on stderr")
    rules_list.set_defaults(run=run_rules_list)
    shared = cli_case.Arguments(_add_input_arguments, _add_output_arguments, _add_hash_arguments)
    cli_case.add_verbs(verbs, shared)
    return parser


def _add_rules_verb(verbs: Any, name: str, summary: str, description: str) -> _Parser:
    """A verb that runs the rules over inputs or a case (detect, incidents, report): its
    input, case, clock, filter, hashing and rules arguments."""
    parser: _Parser = verbs.add_parser(
        name,
        help=summary,
        description=description,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_input_arguments(parser, required=False)
    cli_case.add_case_argument(parser)
    cli_case.add_clock_argument(parser)
    cli_case.add_filter_arguments(parser, risk=True)
    _add_hash_arguments(parser)
    _add_rules_argument(parser)
    return parser


def _add_rules_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rules",
        action="append",
        default=[],
        metavar="PATH",
        help="Sigma rule file or folder, added to the built-in rules (repeatable)",
    )


def _add_input_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "inputs",
        nargs="+" if required else "*",
        metavar="INPUT",
        help="capture or log files, or directories of them",
    )
    parser.add_argument(
        "--input-format",
        choices=INPUT_FORMATS,
        help="read every input as this format instead of recognising it from its content",
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=_jobs,
        default=os.cpu_count() or 1,
        help="inputs read in parallel by this many worker processes; a capture file of 64 MiB or"
        " more by all of them, each decoding a share of its connections (hashing files, a share"
        " for every two workers: each hashes in a process of its own) (default: one per core)",
    )
    parser.add_argument(
        "--zip-password",
        metavar="PASSWORD",
        help="password of encrypted members of zip archives (ZipCrypto or AES; data sets of"
        " malware traffic publish theirs, often 'infected')",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no warning summary on stderr, and no progress bar (shown only on a terminal)",
    )


def _jobs(text: str) -> int:
    """``-j N``: a number of processes, at least one."""
    try:
        jobs = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"at least 1 process, not {jobs}")
    return jobs


def _add_hash_arguments(parser: argparse.ArgumentParser) -> None:
    """``--hash`` and ``--no-hash`` (the same as ``--hash none``): the last one given counts."""
    parser.add_argument(
        "--hash",
        dest="hashes",
        type=_hashes,
        default=DEFAULT_HASHES,
        metavar="LIST",
        help="digests of transferred files: sha256, sha1, md5, comma-separated, or none"
        " (default: sha256)",
    )
    parser.add_argument(
        "--no-hash",
        dest="hashes",
        action="store_const",
        const=(),
        help="no digests of transferred files, as --hash none (file data is then skipped: fastest)",
    )


def _hashes(text: str) -> tuple[str, ...]:
    """``--hash LIST``: digests by name, in the events' order; ``none``: no digest."""
    names = [name.strip().lower() for name in text.split(",")]
    if names == ["none"]:
        return ()
    unknown = [name for name in names if name not in HASHES]
    if unknown or not names:
        choices = ", ".join(HASHES)
        raise argparse.ArgumentTypeError(
            f"not a digest: {unknown[0]!r} (choose from {choices}, or none)"
        )
    return tuple(name for name in HASHES if name in names)


def _add_output_arguments(
    parser: argparse.ArgumentParser, formats: Sequence[str] = TEXT_FORMATS
) -> None:
    parser.add_argument(
        "-f",
        "--format",
        choices=formats,
        help="output format (default: table on a terminal, else jsonl"
        + ("; parquet: a dataset in the directory -o names)" if "parquet" in formats else ")"),
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    parser.add_argument(
        "--wide",
        action="store_true",
        help="table: full-precision times and every cell whole (lines may exceed the terminal)",
    )


def run_events(args: argparse.Namespace, diagnostics: Diagnostics, errors: list[str]) -> int:
    """``smbwatch events``: decode every input and write its events."""
    on_cluster = args.engine == "dask" or args.scheduler is not None
    if cli_case.wants_case(args):
        if on_cluster:
            raise InputError("--engine dask and --scheduler read inputs, not a case or filters")
        return cli_case.case_events(args, diagnostics, errors, _options(args))
    if on_cluster and args.extract_files is not None:
        raise InputError("--extract-files stores files here: not with --engine dask or --scheduler")
    output = Output(args.format, args.output, args.wide)
    options = _options(args)
    engine = None
    if on_cluster:
        from smbwatch.cluster import DaskEngine

        engine = DaskEngine(args.scheduler, args.jobs, _part_writer(output))
    progress = ReadingProgress(shown(args.quiet))
    read = {"input_format": args.input_format, "errors": errors, "jobs": args.jobs}
    read |= {"options": options, "progress": progress}
    try:
        if engine is not None and engine.writer is not None:
            for _ in iter_events(args.inputs, diagnostics, **read, engine=engine):
                pass  # none come back: the workers wrote them
        elif engine is None and output.writes_lines():  # the workers make the lines
            from smbwatch.sinks.jsonl import line

            output.lines(progress.counted(iter_lines(args.inputs, diagnostics, line, **read)))
        else:
            events = iter_events(args.inputs, diagnostics, **read, engine=engine)
            output.events(progress.counted(events), diagnostics)
    finally:
        progress.close()
        if engine is not None:
            engine.close()
    return EXIT_OK


def _part_writer(output: Output) -> ParquetParts | None:
    """On a cluster, a Parquet dataset is written by the workers, each its tasks' files."""
    if output.format != "parquet":
        return None
    from smbwatch.sinks.parquet import ParquetParts

    assert output.path is not None
    return ParquetParts(output.path)


def _options(args: argparse.Namespace) -> Options:
    if args.extract_files is None:
        return cli_case.read_options(args)
    if "sha256" not in args.hashes:
        raise InputError(
            "--extract-files names files by their sha256: it needs sha256 in --hash"
            " (it cannot go with --no-hash)"
        )
    from smbwatch.sinks.extract import ExtractError, FileExtractor  # here: only for this option

    try:
        extractor = FileExtractor(args.extract_files)
    except ExtractError as exc:
        raise InputError(str(exc)) from None
    return Options(hashes=args.hashes, extract=extractor, zip_password=args.zip_password)


def _load_rules(args: argparse.Namespace) -> RuleSet:
    from smbwatch.detect.sigma import RuleError, load_rules

    try:
        ruleset = load_rules(args.rules)
    except RuleError as exc:
        raise InputError(str(exc)) from None
    if not args.quiet:
        for line in ruleset.warnings:
            print(f"smbwatch: warning: {line}", file=sys.stderr)
    return ruleset


def run_detect(args: argparse.Namespace, diagnostics: Diagnostics, errors: list[str]) -> int:
    """``smbwatch detect``: run the rules over every input's events and write the alerts."""
    from smbwatch.detect.report import ALERTS

    alerts, _ = _alerts_and_incidents(args, diagnostics, errors)
    return _write_found(args, alerts, ALERTS)


def run_incidents(args: argparse.Namespace, diagnostics: Diagnostics, errors: list[str]) -> int:
    """``smbwatch incidents``: the alerts grouped into moves from host to host."""
    from smbwatch.detect.report import INCIDENTS

    _, incidents = _alerts_and_incidents(args, diagnostics, errors)
    return _write_found(args, incidents, INCIDENTS)


def _write_found(args: argparse.Namespace, found: Sequence[Alert | Incident], kind: RowKind) -> int:
    """Alerts or incidents of ``--min-risk`` or more written; exit 1 when there are any."""
    if args.min_risk is not None:
        found = [item for item in found if item.risk_score >= args.min_risk]
    Output(args.format, args.output, args.wide).rows([item.to_dict() for item in found], kind)
    return EXIT_ALERTS if found else EXIT_OK


def run_report(args: argparse.Namespace, diagnostics: Diagnostics, errors: list[str]) -> int:
    """``smbwatch report``: the case (or the inputs) as one HTML page."""
    return cli_case.case_report(args, diagnostics, errors, _load_rules(args))


def _alerts_and_incidents(
    args: argparse.Namespace, diagnostics: Diagnostics, errors: list[str]
) -> tuple[list[Alert], list[Incident]]:
    """The alerts and incidents of the inputs or the case. One input is read as it streams,
    its machines named once it is read (the case's rules, without the case)."""
    from smbwatch.case.entities import HostClaims
    from smbwatch.detect.engine import Detector
    from smbwatch.detect.incidents import group_incidents

    ruleset = _load_rules(args)
    if cli_case.wants_case(args):
        return cli_case.case_detect(args, diagnostics, errors, ruleset)
    options = cli_case.read_options(args)
    claims = HostClaims()
    progress = ReadingProgress(shown(args.quiet))
    events = iter_events(
        args.inputs, diagnostics, args.input_format, errors, args.jobs, options, progress
    )
    detector = Detector(ruleset, diagnostics, lambda: claims.machines().namer)
    alerts: list[Alert] | None = None
    try:
        detector.feed_all(progress.counted(claims.observe(events), detector.alerts_so_far))
        alerts = detector.alerts()
    finally:
        progress.close(None if alerts is None else len(alerts))
    return alerts, group_incidents(alerts)


def run_rules_list(args: argparse.Namespace, diagnostics: Diagnostics, errors: list[str]) -> int:
    """``smbwatch rules list``: the loaded rules, their level, ATT&CK ids and origin."""
    from smbwatch.detect.report import write_rule_listing

    ruleset = _load_rules(args)
    output = Output(args.format, args.output, args.wide)
    output.text(lambda out, fmt: write_rule_listing(ruleset, fmt, out, args.wide))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``smbwatch`` console script."""
    gc.set_threshold(YOUNG_COLLECTION_EVERY, OLDER_COLLECTION_EVERY, gc.get_threshold()[2])
    args = build_parser().parse_args(argv)
    diagnostics = Diagnostics()
    errors: list[str] = []
    install_interrupt()
    try:
        code = args.run(args, diagnostics, errors)
    except (InputError, OutputError, CaseError) as exc:
        print(f"smbwatch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Interrupted as stop:
        print(f"smbwatch: stopped ({stop})", file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:
        print("smbwatch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (| head): not an error worth a traceback
        return EXIT_OK
    for message in errors:
        print(f"smbwatch: error: {message}", file=sys.stderr)
    if not args.quiet:
        for line in diagnostics.summary_lines():
            print(f"smbwatch: {line}", file=sys.stderr)
    if errors:
        return EXIT_USAGE
    if diagnostics.damaged_inputs and code == EXIT_OK:
        return EXIT_DAMAGED
    return code


if __name__ == "__main__":
    sys.exit(main())
