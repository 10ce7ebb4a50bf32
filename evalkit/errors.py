"""User-facing errors. The CLI turns each into one line on stderr and an exit code.

Exit codes (documented in README and ``evalkit --help``):

* 0 - success, all gates pass
* 1 - a quality gate failed
* 2 - bad input or usage (:class:`InputError`)
* 3 - infrastructure fault: tracking store unreachable, model not loadable (:class:`InfraError`)
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INFRA = 3


class EvalkitError(Exception):
    """Base class of errors that are shown to the user as one line (no traceback)."""

    exit_code: int = EXIT_BAD_INPUT


class InputError(EvalkitError):
    """Bad input or usage: a file, field or option does not hold what was expected (exit 2).

    The message names the file / field / option and what was expected.
    """

    exit_code = EXIT_BAD_INPUT


class InfraError(EvalkitError):
    """An infrastructure fault: tracking store unreachable, model not loadable (exit 3)."""

    exit_code = EXIT_INFRA
