"""Where events and alerts go: the formats (``output``) and each sink."""


class OutputError(Exception):
    """The output cannot be written as asked (a file that cannot be opened, a bad format)."""
