"""Exit codes: what every verb's ``--help`` and the README say, and what the verbs return."""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0
EXIT_ALERTS: Final = 1
EXIT_USAGE: Final = 2
EXIT_DAMAGED: Final = 3
EXIT_INTERRUPTED: Final = 130  # SIGINT; SIGTERM gives 143 (128 + the signal), as shells do
EXIT_CODES: Final = """exit codes:
  0    done; for detect: nothing fired; for incidents: none
  1    detect: alerts fired; incidents: incidents found
  2    user error: bad arguments, a bad rule, a named input missing or not a capture/log,
       a case that cannot be used (the other inputs are still processed and written)
  3    an input was damaged (truncated, corrupt, a decompression bomb): everything readable
       was decoded and written (for detect and incidents, only when nothing fired)
  130  interrupted (SIGINT); 143: terminated (SIGTERM). The output holds complete records."""
