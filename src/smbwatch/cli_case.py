"""The case on the command line: ``ingest``, ``query``, ``timeline``, and ``--case`` and the
filters for ``events`` and ``detect`` (wiring only; the work is in ``smbwatch.case``).

Without ``--case``, ``timeline`` (and ``events`` or ``detect`` given filters or several inputs)
ingest their inputs into a temporary case, which is removed when they are done: one way to
merge, deduplicate, resolve names and sort, whatever the inputs' sizes.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from smbwatch.case import CaseError
from smbwatch.case.filters import Filters
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import FIELD_NAMES, SmbEvent
from smbwatch.exits import EXIT_CODES, EXIT_OK
from smbwatch.options import Options
from smbwatch.pipeline import expand_inputs
from smbwatch.sinks.output import FORMATS, Output, RowKind, columns_kind
from smbwatch.sinks.progress import ReadingProgress, shown
from smbwatch.sinks.table import TIMELINE_COLUMNS

if TYPE_CHECKING:
    from smbwatch.case.store import Case
    from smbwatch.detect.alert import Alert
    from smbwatch.detect.incidents import Incident
    from smbwatch.detect.sigma import RuleSet

TIMELINE = RowKind("SMB timeline", TIMELINE_COLUMNS, FIELD_NAMES)
# Verbs that read several inputs as one: through a case, each message once, wire and host joined.
MERGING_VERBS = ("detect", "incidents", "report")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


Verb = TypeVar("Verb", bound=Callable[..., Any])


def guarded(run: Verb) -> Verb:
    """A verb whose database errors (a case damaged where it is read) are one line."""

    @functools.wraps(run)
    def verb(args: argparse.Namespace, *rest: Any) -> int:
        import duckdb

        from smbwatch.case.store import short_error

        try:
            return run(args, *rest)
        except duckdb.Error as error:
            raise CaseError(f"{args.case or 'the case'}: {short_error(error)}") from None

    return cast(Verb, verb)


class Arguments:
    """The argument groups the command line shares between its verbs (cli.py)."""

    inputs: Callable[..., None]
    output: Callable[..., None]
    no_hash: Callable[[argparse.ArgumentParser], None]

    def __init__(
        self,
        inputs: Callable[..., None],
        output: Callable[..., None],
        no_hash: Callable[[argparse.ArgumentParser], None],
    ) -> None:
        self.inputs = inputs
        self.output = output
        self.no_hash = no_hash


def read_options(args: argparse.Namespace) -> Options:
    """How the inputs are read, as the shared input arguments say (``--hash``, ``--no-hash``,
    ``--zip-password``)."""
    return Options(hashes=args.hashes, zip_password=args.zip_password)


def add_verbs(verbs: Any, shared: Arguments) -> None:
    """``ingest``, ``query`` and ``timeline``."""
    ingest = verbs.add_parser(
        "ingest",
        help="add captures and logs to a case (an embedded database)",
        description="Add every new input to the case (made on first use); an input already "
        "in it (the same content) adds nothing.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_case_argument(ingest, required=True)
    shared.inputs(ingest, required=False)
    shared.no_hash(ingest)
    add_clock_argument(ingest)
    ingest.set_defaults(run=run_ingest)

    query = verbs.add_parser(
        "query",
        help="any SQL over a case (tables events, sightings, inputs, hosts, users, alerts...)",
        description="Run one SQL query over the case, read only, and write its rows.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_case_argument(query, required=True)
    query.add_argument("sql", metavar="SQL", help="the query")
    shared.output(query)
    query.add_argument("-q", "--quiet", action="store_true", help="no warning summary on stderr")
    query.set_defaults(run=run_query)

    timeline = verbs.add_parser(
        "timeline",
        help="every event of a case or of inputs in time order, each message once",
        description="Every event in time order; an SMB message or host record several sources "
        "saw is shown once, with the sources in seen_by.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_case_argument(timeline)
    shared.inputs(timeline, required=False)
    shared.no_hash(timeline)
    add_clock_argument(timeline)
    add_filter_arguments(timeline)
    shared.output(timeline, FORMATS)
    timeline.set_defaults(run=run_timeline)


def add_case_argument(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument(
        "--case",
        metavar="DIR",
        required=required,
        help="the case directory" + ("" if required else " (instead of inputs)"),
    )


def add_clock_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--clock-offset",
        action="append",
        default=[],
        metavar="SOURCE=OFFSET",
        help="correct a source's clock: SOURCE is an input (path, file name or glob) or a host "
        "name; OFFSET such as +5h, -30m, 1h30m, 2.5s (repeatable)",
    )


def add_filter_arguments(parser: argparse.ArgumentParser, risk: bool = False) -> None:
    parser.add_argument("--src", metavar="HOST", help="client: a host name, alias or address")
    parser.add_argument("--dst", metavar="HOST", help="server: a host name, alias or address")
    parser.add_argument(
        "--user", metavar="USER", help="DOMAIN\\user, user@domain or user (any domain)"
    )
    parser.add_argument(
        "--since", metavar="TIME", help="ISO 8601 (UTC unless it says), or 2h: the last 2 hours"
    )
    parser.add_argument("--until", metavar="TIME", help="as --since")
    if risk:
        parser.add_argument(
            "--min-risk", type=int, metavar="N", help="only alerts of risk score N or more"
        )


def filters_of(args: argparse.Namespace) -> Filters:
    return Filters(args.src, args.dst, args.user, args.since, args.until)


def wants_case(args: argparse.Namespace) -> bool:
    """Whether ``events``, ``detect``, ``incidents`` or ``report`` read through a case: one is
    named, filters or clock corrections are given, or (all but ``events``) several inputs may
    hold the same messages or the two sides of one action."""
    if args.case or args.clock_offset or filters_of(args).any():
        return True
    if not args.inputs:
        raise CaseError("give the inputs to read, or --case DIR")
    return args.verb in MERGING_VERBS and len(expand_inputs(args.inputs, [])) > 1


@contextmanager
def opened(
    args: argparse.Namespace, diagnostics: Diagnostics, errors: list[str], options: Options
) -> Iterator[Case]:
    """The case named by ``--case`` (read only), or a temporary one made of the inputs."""
    from smbwatch.case.store import Case

    if args.case:
        if args.inputs:
            raise CaseError("give --case DIR or inputs, not both (add inputs with ingest)")
        if args.clock_offset:
            raise CaseError(
                f"a case's clocks are corrected once for all: smbwatch ingest --case {args.case}"
                " --clock-offset SOURCE=OFFSET"
            )
        with Case.open(args.case) as case:
            if case.unsettled():
                diagnostics.warn(
                    "case_not_settled",
                    f"{args.case}: names and clocks are not up to date (an ingest was stopped): "
                    f"run smbwatch ingest --case {args.case} again",
                )
            yield case
        return
    if not args.inputs:
        raise CaseError("give the inputs to read, or --case DIR")
    import tempfile  # here, as the case itself: a run without a case never loads it

    directory = tempfile.mkdtemp(prefix="smbwatch-case-")
    try:
        with Case.open(directory, write=True, temporary=True) as case:
            _ingest(case, args, diagnostics, errors, options, together=True)
            yield case
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _ingest(
    case: Case,
    args: argparse.Namespace,
    diagnostics: Diagnostics,
    errors: list[str],
    options: Options,
    together: bool = False,
) -> list[str]:
    """The inputs added to the case (``together``: up to ``GROUP_INPUTS`` in one transaction,
    for a temporary case, else ``KEPT_GROUP_INPUTS``); what it did, to print."""
    from smbwatch.case.clocks import ClockError, parse_correction
    from smbwatch.case.ingest import GROUP_INPUTS, KEPT_GROUP_INPUTS, ingest

    try:
        corrections = [parse_correction(text) for text in args.clock_offset]
    except ClockError as error:
        raise CaseError(str(error)) from None
    jobs = max(1, args.jobs)
    progress = ReadingProgress(shown(args.quiet))
    try:
        done = ingest(
            case,
            args.inputs,
            diagnostics,
            errors,
            args.input_format,
            jobs,
            options,
            corrections,
            GROUP_INPUTS if together else KEPT_GROUP_INPUTS,
            progress,
        )
    finally:
        progress.close()
    if not args.quiet:
        for line in done.warnings:
            print(f"smbwatch: warning: {line}", file=sys.stderr)
    lines = [f"added {a.path}: {a.events} events ({a.duplicates} seen before)" for a in done.added]
    lines += [f"known {path}: already in the case" for path in done.known]
    return lines


# --- verbs ------------------------------------------------------------------------------------
@guarded
def run_ingest(args: argparse.Namespace, diagnostics: Diagnostics, errors: list[str]) -> int:
    """``smbwatch ingest --case DIR INPUT...``."""
    from smbwatch.case.store import Case

    if not args.inputs and not args.clock_offset:
        raise CaseError("nothing to do: give inputs to add, or --clock-offset corrections")
    with Case.open(args.case, write=True) as case:
        for line in _ingest(case, args, diagnostics, errors, read_options(args)):
            print(line)
    return EXIT_OK


@guarded
def run_query(args: argparse.Namespace, diagnostics: Diagnostics, errors: list[str]) -> int:
    """``smbwatch query --case DIR SQL``: rows as a table, JSON lines or CSV."""
    from smbwatch.case.query import batches
    from smbwatch.case.store import Case

    output = Output(args.format, args.output, args.wide)
    with Case.open(args.case) as case:
        found = batches(case, args.sql)
        first = next(found, None)
        names = first.schema.names if first is not None else []
        rows = (_plain_row(row) for batch in _chain(first, found) for row in batch.to_pylist())
        output.rows(rows, columns_kind("query", names))
    return EXIT_OK


@guarded
def run_timeline(args: argparse.Namespace, diagnostics: Diagnostics, errors: list[str]) -> int:
    """``smbwatch timeline (--case DIR | INPUT...)``."""
    return case_events(args, diagnostics, errors, read_options(args), TIMELINE)


@guarded
def case_events(
    args: argparse.Namespace,
    diagnostics: Diagnostics,
    errors: list[str],
    options: Options,
    kind: RowKind | None = None,
) -> int:
    """The events of a case (or of the inputs, merged), filtered, in time order."""
    from smbwatch.case.query import timeline
    from smbwatch.sinks.output import EVENTS

    output = Output(args.format, args.output, args.wide)
    with opened(args, diagnostics, errors, options) as case:
        output.batches(timeline(case, filters_of(args)), diagnostics, kind or EVENTS)
    return EXIT_OK


@guarded
def case_detect(
    args: argparse.Namespace, diagnostics: Diagnostics, errors: list[str], ruleset: RuleSet
) -> tuple[list[Alert], list[Incident]]:
    """The alerts and incidents of a case (or of the inputs, merged): each message once,
    filtered; over a whole case, the alerts are also stored in its ``alerts`` table."""
    filters = filters_of(args)
    with opened(args, diagnostics, errors, read_options(args)) as case:
        alerts, incidents = _detected(case, filters, ruleset, diagnostics)
    if args.case and not filters.any():
        _store_alerts(args.case, [alert.to_dict() for alert in alerts], diagnostics)
    return alerts, incidents


REPORT_ALERTS = 500  # alerts the page lists (highest risk first); incidents name them all
REPORT_INCIDENTS = 300  # incidents the page lists (highest risk first)
REPORT_EVIDENCE = 10  # evidence items the page shows per alert
REPORT_EVIDENCE_RISK = 25  # the events these alerts name stay in a sampled timeline


@guarded
def case_report(
    args: argparse.Namespace, diagnostics: Diagnostics, errors: list[str], ruleset: RuleSet
) -> int:
    """``smbwatch report``: the case (or the inputs, merged) as one HTML page."""
    from pathlib import PurePath  # here: a run on named files never loads it

    from smbwatch import __version__
    from smbwatch.case.story import gather
    from smbwatch.sinks.report_html import write_report

    filters = filters_of(args)
    with opened(args, diagnostics, errors, read_options(args)) as case:
        alerts, incidents = _detected(case, filters, ruleset, diagnostics)
        if args.min_risk is not None:
            incidents = [i for i in incidents if i.risk_score >= args.min_risk]
            alerts = [a for a in alerts if a.risk_score >= args.min_risk]
        incidents_total = len(incidents)
        incidents = incidents[:REPORT_INCIDENTS]
        named = {
            (item["source_file"], item["source_ref"])
            for alert in alerts
            if alert.risk_score >= REPORT_EVIDENCE_RISK
            for item in alert.evidence
            if item["source_file"] is not None and item["source_ref"] is not None
        }
        pairs = {
            (i.src_host, i.dst_host)
            for i in incidents
            if i.src_host is not None and i.dst_host is not None
        }
        story = gather(case, filters, named, pairs)
    shown = []
    for alert in alerts[:REPORT_ALERTS]:
        row = alert.to_dict()
        row["evidence_count"] = len(alert.evidence)
        row["evidence"] = alert.evidence[:REPORT_EVIDENCE]
        shown.append(row)
    data = {
        **story,
        "generated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "version": __version__,
        "incidents": [incident.to_dict() for incident in incidents],
        "incidents_total": incidents_total,
        "alerts": shown,
        "alerts_total": len(alerts),
    }
    names = [args.case] if args.case else [PurePath(p).name for p in args.inputs]
    title = "smbwatch report: " + ", ".join(str(n) for n in names)
    Output(None, args.output).text(lambda out, _fmt: write_report(out, title, data))
    return EXIT_OK


def _detected(
    case: Case, filters: Filters, ruleset: RuleSet, diagnostics: Diagnostics
) -> tuple[list[Alert], list[Incident]]:
    """The alerts and incidents of the case's timeline. The detector may read the timeline
    again at given places (it holds a rule's matches past ``engine.HELD_MATCHES`` as places,
    not events): the same query on the same open case, sorted by one thread, so the same
    events in the same order."""
    from smbwatch.arrow import batch_events, events_at
    from smbwatch.case.query import timeline
    from smbwatch.detect.engine import detect_incidents

    def recall(places: list[int]) -> Iterator[SmbEvent]:
        return events_at(timeline(case, filters), places, Diagnostics(), "the case")

    events = batch_events(timeline(case, filters), diagnostics, "the case")
    return detect_incidents(events, ruleset, diagnostics, None, recall)


def _store_alerts(directory: str, alerts: list[dict[str, Any]], diagnostics: Diagnostics) -> None:
    from smbwatch.case.store import Case
    from smbwatch.sinks.jsonl import encode

    names = (
        "rule_id", "title", "severity", "risk_score", "message", "attack",
        "first_time", "last_time", "count",
    )  # fmt: skip
    rows = [(*(a[n] for n in names), encode(a)) for a in alerts]
    try:
        with Case.open(directory, write=True) as case, case.transaction(directory):
            case.db.execute("DELETE FROM alerts")
            case.insert("alerts", (*names, "alert"), rows)  # one statement (a row each: minutes)
    except CaseError as error:  # a read-only case: the alerts were still written out
        diagnostics.warn("alerts_not_stored", str(error))


# --- query results as plain values ------------------------------------------------------------
def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    if first is not None:
        yield first
        yield from rest


def _plain_row(row: dict[str, Any]) -> dict[str, Any]:
    return {name: _plain(value) for name, value in row.items()}


def _plain(value: Any) -> Any:
    """A query's value as the sinks write it: times as the events' ISO 8601 with ``Z``."""
    from decimal import Decimal  # here: only a query's values may be one

    from smbwatch.events import format_time

    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        delta = moment - _EPOCH
        return format_time((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
