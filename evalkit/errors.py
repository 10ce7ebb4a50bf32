"""User-facing errors. The CLI turns each into one line on stderr and an exit code.

Exit codes (documented in docs/reference/exit-codes.md and ``evalkit --help``):

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


#: marks a configuration field's name inside a message (see :func:`field_name`)
_FIELD = "\x1f"


def field_name(name: str, switch: bool | None = None) -> str:
    """``name`` (a field of :class:`~evalkit.config.RunConfig`, ``EvaluateJobConfig``, a reader option
    or an executor setting) marked inside an error message, so that each entry point names it its own
    way: ``str(error)`` writes the field (Python API), the CLI its flag (``--label-columns``) or, for a
    value that came from a spec file, its spec key (:meth:`EvalkitError.named`). ``switch``: a boolean
    field set to that value (``track=False``: ``--no-track`` on the command line, ``track = false`` in a spec)."""
    return f"{_FIELD}{name}{'' if switch is None else '=' + str(bool(switch)).lower()}{_FIELD}"


def _python_name(field: str, switch: bool | None = None) -> str:
    return field if switch is None else f"{field}={switch}"


class EvalkitError(Exception):
    """Base class of errors that are shown to the user as one line (no traceback).

    A message may name configuration fields with :func:`field_name`; ``str(error)`` shows them as
    field names and :meth:`named` as the caller chooses."""

    exit_code: int = EXIT_BAD_INPUT

    def __init__(self, *args, report_json: str | None = None):
        """``report_json``: the report, printed to stdout by the CLI when its file could not be written."""
        super().__init__(*args)
        self.report_json = report_json

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields the message names (:func:`field_name`), in order."""
        import re

        return tuple(m.partition("=")[0] for m in re.findall(f"{_FIELD}([^{_FIELD}]*){_FIELD}", super().__str__()))

    def named(self, name) -> str:
        """The message with each marked field written as ``name(field)`` (``name(field, switch)`` for a
        boolean set to ``switch``)."""
        import re

        def one(m) -> str:
            field, _, switch = m[1].partition("=")
            return name(field, switch == "true") if switch else name(field)

        return re.sub(f"{_FIELD}([^{_FIELD}]*){_FIELD}", one, super().__str__())

    def __str__(self) -> str:
        return self.named(_python_name)


class InputError(EvalkitError):
    """Bad input or usage: a file, field or option does not hold what was expected (exit 2).

    The message names the file / field / option and what was expected.
    """

    exit_code = EXIT_BAD_INPUT


class InfraError(EvalkitError):
    """An infrastructure fault: tracking store unreachable, model not loadable (exit 3)."""

    exit_code = EXIT_INFRA


#: one-word causes of file-system errors, for one-line messages ("path: disk full")
_ERRNO_CAUSES = {
    "ENOSPC": "disk full",
    "EDQUOT": "disk quota exceeded",
    "EROFS": "read-only file system",
    "EACCES": "permission denied",
    "EPERM": "permission denied",
    "ENOTDIR": "a parent is not a directory",
    "EISDIR": "is a directory",
    "ENOENT": "no such file or directory",
    "EEXIST": "already exists",
    "EIO": "I/O error",
    "EMFILE": "too many open files",
}


def os_cause(e: BaseException) -> str:
    """A short cause for an OSError: ``disk full`` (ENOSPC), ``read-only file system`` (EROFS),
    ``permission denied`` (EACCES), ...; else the error's own text. Never raises."""
    import errno

    name = errno.errorcode.get(getattr(e, "errno", None) or -1, "")
    if name in _ERRNO_CAUSES:
        return _ERRNO_CAUSES[name]
    text = (getattr(e, "strerror", None) or str(e) or type(e).__name__).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


class WriteError(InfraError):
    """A file could not be written (disk full, read-only, permission denied): exit 3, one line
    ``<what> <path>: <cause>``. ``path`` and ``cause`` are kept as attributes."""

    def __init__(self, path, e: BaseException, what: str = "cannot write"):
        self.path = str(path if path is not None else getattr(e, "filename", "") or "?")
        self.cause = os_cause(e)
        super().__init__(f"{what} {self.path}: {self.cause}")


def write_error(path, e: BaseException, what: str = "cannot write") -> WriteError:
    """The :class:`WriteError` (exit 3) for an OSError raised while writing ``path``."""
    return WriteError(path, e, what)


def out_of_memory(e: BaseException) -> bool:
    """True for a ``MemoryError``, or an ImportError / OSError caused by one (``ENOMEM``, "cannot
    allocate memory" while loading a shared library under ``ulimit -v``), also in its causes."""
    import errno

    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, MemoryError) or getattr(e, "errno", None) == errno.ENOMEM:
            return True
        if isinstance(e, (ImportError, OSError)) and any(
                s in str(e).lower() for s in ("cannot allocate memory", "out of memory", "failed to map segment")):
            return True
        e = e.__cause__ or e.__context__
    return False


def failure_note(e: BaseException) -> str:
    """One line describing why a run failed (for the run's ``evalkit.error`` tag); never raises."""
    if out_of_memory(e):
        return "out of memory (MemoryError): raise the memory limit or lower --batch-size / --hidden / --fold-processes"
    text = (str(e) or type(e).__name__).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:500]
