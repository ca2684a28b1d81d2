"""The case: an incident's inputs in one embedded store (DuckDB), read back as one timeline.

``store`` (the database, its tables and views, its lock), ``ingest`` (adding inputs), ``entities``
(one name per host and per user), ``clocks`` (corrections and estimated offsets), ``query``
(filters and the timeline as SQL).
"""


class CaseError(Exception):
    """The case cannot be used as asked (one line for the user; exit code 2). Here, apart from
    the store, so that the command line knows it without loading DuckDB."""
