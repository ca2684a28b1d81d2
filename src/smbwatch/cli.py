"""The command line: verbs, their arguments, and the wiring from inputs to sinks.

The exit codes are ``EXIT_CODES`` (the README's table, and every verb's ``--help``).
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

from smbwatch import __version__
from smbwatch.capture import tcp
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import FIELD_NAMES, SmbEvent
from smbwatch.interrupt import Interrupted
from smbwatch.interrupt import install as install_interrupt
from smbwatch.options import Options
from smbwatch.pipeline import InputError, iter_events
from smbwatch.sinks.csv import write_csv
from smbwatch.sinks.extract import ExtractError, FileExtractor
from smbwatch.sinks.jsonl import write_jsonl
from smbwatch.sinks.table import EVENT_COLUMNS, write_table

if TYPE_CHECKING:
    from smbwatch.detect.sigma import RuleSet

EXIT_OK = 0
EXIT_ALERTS = 1
EXIT_USAGE = 2
EXIT_DAMAGED = 3
EXIT_INTERRUPTED = 130  # SIGINT; SIGTERM gives 143 (128 + the signal), as shells do
DESCRIPTION = """\
smbwatch shows lateral movement over SMB. From packet captures (pcap, pcapng) and
Windows event logs (EVTX, XML, JSON, Splunk text), also gzip-compressed or zipped,
it reports every SMB event in one event model (who reached which share and file,
how, when) and raises detections (built-in and your own Sigma rules, on both)."""
EXIT_CODES = """exit codes:
  0    done; for detect: nothing fired
  1    detect: alerts fired
  2    user error: bad arguments, a bad rule, a named input missing or not a capture/log
       (the other inputs are still processed and written)
  3    an input was damaged (truncated, corrupt, a decompression bomb): everything readable
       was decoded and written (for detect, only when nothing fired)
  130  interrupted (SIGINT); 143: terminated (SIGTERM). The output holds complete records."""
# Objects allocated between young collections (Python's default: 700). Decoding allocates
# millions of short-lived objects and holds thousands of events while their files' digests
# are computed; at 700 the collector walks those held events over and over (a tenth of a
# second per gigabyte), for cycles that are rare and small.
YOUNG_COLLECTION_EVERY = 10_000
INPUT_FORMATS = ("pcap", "pcapng", "evtx", "xml", "json", "splunk")
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
    _add_input_arguments(events)
    _add_output_arguments(events)
    _add_no_hash_argument(events)
    events.add_argument(
        "--extract-files",
        metavar="DIR",
        help="store each completely seen file in DIR, named by its sha256, with a JSON sidecar",
    )
    events.set_defaults(run=run_events)
    detect_verb = verbs.add_parser(
        "detect",
        help="run the detection rules over captures and Windows logs",
        description="Run the built-in and your Sigma rules over the events; write the alerts.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_input_arguments(detect_verb)
    _add_no_hash_argument(detect_verb)
    _add_rules_argument(detect_verb)
    _add_output_arguments(detect_verb)
    detect_verb.set_defaults(run=run_detect)
    rules = verbs.add_parser("rules", help="the detection rules")
    rules_verbs = rules.add_subparsers(dest="rules_verb", required=True, parser_class=_Parser)
    rules_list = rules_verbs.add_parser(
        "list", help="the rules loaded and where from", description="List the loaded rules."
    )
    _add_rules_argument(rules_list)
    _add_output_arguments(rules_list)
    rules_list.add_argument("-q", "--quiet", action="store_true", help="no warnings on stderr")
    rules_list.set_defaults(run=run_rules_list)
    return parser


def _add_rules_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rules",
        action="append",
        default=[],
        metavar="PATH",
        help="Sigma rule file or folder, added to the built-in rules (repeatable)",
    )


def _add_input_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="capture or log files, or directories of them"
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
        help="inputs read in parallel by this many processes (default: one per core)",
    )
    parser.add_argument(
        "--zip-password",
        metavar="PASSWORD",
        help="password of encrypted members of zip archives (ZipCrypto or AES; data sets of"
        " malware traffic publish theirs, often 'infected')",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no warning summary on stderr")


def _jobs(text: str) -> int:
    """``-j N``: a number of processes, at least one."""
    try:
        jobs = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"at least 1 process, not {jobs}")
    return jobs


def _add_no_hash_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-hash",
        action="store_true",
        help="no sha256/sha1/md5 of transferred files (file data is then skipped: fastest)",
    )


def _add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f",
        "--format",
        choices=("table", "jsonl", "csv"),
        help="output format (default: table on a terminal, else jsonl)",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")


@contextmanager
def _output(path: str | None) -> Iterator[TextIO]:
    if path is None:
        if isinstance(sys.stdout, io.TextIOWrapper):  # names from the wire may not encode
            sys.stdout.reconfigure(errors="backslashreplace")
        yield sys.stdout
        return
    try:
        handle = open(path, "w", encoding="utf-8", errors="backslashreplace", newline="")  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror}") from None
    with handle:
        yield handle


def _format(args: argparse.Namespace, out: TextIO) -> str:
    if args.format:
        return args.format
    return "table" if out.isatty() else "jsonl"


def run_events(args: argparse.Namespace, diagnostics: Diagnostics, errors: list[str]) -> int:
    """``smbwatch events``: decode every input and write its events."""
    options = _options(args)
    events = iter_events(args.inputs, diagnostics, args.input_format, errors, args.jobs, options)
    rows = map(SmbEvent.to_dict, events)
    with _output(args.output) as out:
        fmt = _format(args, out)
        if fmt == "jsonl":
            write_jsonl(rows, out)
        elif fmt == "csv":
            write_csv(rows, out, FIELD_NAMES)
        else:
            write_table(rows, out, EVENT_COLUMNS, "SMB events")
    return EXIT_OK


def _options(args: argparse.Namespace) -> Options:
    if args.extract_files is None:
        return Options(hash_files=not args.no_hash, zip_password=args.zip_password)
    if args.no_hash:
        raise InputError("--extract-files names files by their sha256: it cannot go with --no-hash")
    try:
        extractor = FileExtractor(args.extract_files)
    except ExtractError as exc:
        raise InputError(str(exc)) from None
    return Options(extract=extractor, zip_password=args.zip_password)


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
    from smbwatch.detect.engine import detect
    from smbwatch.detect.report import write_alerts

    ruleset = _load_rules(args)
    options = Options(hash_files=not args.no_hash, zip_password=args.zip_password)
    events = iter_events(args.inputs, diagnostics, args.input_format, errors, args.jobs, options)
    alerts = detect(events, ruleset, diagnostics)
    with _output(args.output) as out:
        write_alerts(alerts, _format(args, out), out)
    return EXIT_ALERTS if alerts else EXIT_OK


def run_rules_list(args: argparse.Namespace, diagnostics: Diagnostics, errors: list[str]) -> int:
    """``smbwatch rules list``: the loaded rules, their level, ATT&CK ids and origin."""
    from smbwatch.detect.report import write_rule_listing

    ruleset = _load_rules(args)
    with _output(args.output) as out:
        write_rule_listing(ruleset, _format(args, out), out)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``smbwatch`` console script."""
    gc.set_threshold(YOUNG_COLLECTION_EVERY, *gc.get_threshold()[1:])
    args = build_parser().parse_args(argv)
    diagnostics = Diagnostics()
    errors: list[str] = []
    install_interrupt()
    try:
        code = args.run(args, diagnostics, errors)
    except InputError as exc:
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
