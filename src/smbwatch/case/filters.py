"""What the user asked to see of a case (``--src``, ``--dst``, ``--user``, ``--since``,
``--until``): a module of its own, without the database, so that the command line can tell
whether filters were given without loading DuckDB (0.3 s and 60 MB at every start)."""

from __future__ import annotations


class Filters:
    """What the user asked to see (None: anything)."""

    src: str | None
    dst: str | None
    user: str | None
    since: str | None
    until: str | None

    def __init__(
        self,
        src: str | None = None,
        dst: str | None = None,
        user: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> None:
        self.src = src
        self.dst = dst
        self.user = user
        self.since = since
        self.until = until

    def any(self) -> bool:
        return any((self.src, self.dst, self.user, self.since, self.until))
