"""Exit codes (also in the README): 0 done (detect: nothing fired); 1 detect: alerts fired;
2 a user error (bad arguments, a bad rule, a named input missing or not a capture/log, a case
that cannot be used: the other inputs are still processed and written); 3 an input was damaged
(truncated, corrupt): what could be read was decoded and written; 130 interrupted."""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0
EXIT_ALERTS: Final = 1
EXIT_USAGE: Final = 2
EXIT_DAMAGED: Final = 3
EXIT_INTERRUPTED: Final = 130
