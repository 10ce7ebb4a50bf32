"""Output safety of the CLI: output paths checked against inputs and existing files (``--force``),
and a stdout that may be closed (``evalkit ... | head``) or full (``/dev/full``) without the work
being lost. Light at import (standard library only)."""

from __future__ import annotations

import errno
import os
import re
import sys
from pathlib import Path

from evalkit.errors import InputError

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text) -> str:
    """``str(text)`` with its control characters (ANSI escapes, NUL, ...; not tab and newline) written
    as ``\\x1b``, ``\\x00``: the one place data-derived text is made safe for the terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def json_text(data) -> str:
    """``data`` as indented JSON with every NaN / infinite float written as ``null`` (an undefined
    value): Python's ``json`` would write ``NaN``, which JSON readers refuse."""
    import json
    import math

    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(data), indent=2, allow_nan=False, default=str) + "\n"


def error_line(message: str) -> None:
    """``error: message`` on stderr, one line (``error:`` in red on a colour terminal), without rich:
    bad input is answered before anything heavy is imported."""
    color = sys.stderr.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"
    sys.stderr.write(("\x1b[31merror:\x1b[0m " if color else "error: ") + printable(message) + "\n")
    sys.stderr.flush()


#: extensions matplotlib writes (``--plot FILE``)
PLOT_EXTENSIONS = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def _same(a: str, b: str) -> bool:
    """``a`` and ``b`` are one file (symlinks and hardlinks included); never raises."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def local_path(value) -> str | None:
    """The local file a flag's value names (a path, ``file:`` URI or ``sqlite:///`` URI), else None."""
    if not value or not isinstance(value, (str, os.PathLike)):
        return None
    text = str(value)
    for prefix in ("sqlite:///", "file://"):
        if text.startswith(prefix):
            return text[len(prefix):] or None
    if "://" in text or text.startswith(("runs:/", "models:/")):
        return None
    return text if os.path.exists(text) else None


def check_outputs(outputs: dict[str, str | None], inputs: dict[str, object], force: bool = False) -> None:
    """Refuse, before any work, an output (``{flag: path}``) that is one of the inputs (``{flag: value}``;
    always, even with ``force``), a directory, or an existing file without ``force``.

    Raises:
        InputError (exit 2): one line naming the flags and what was expected.
    """
    given = {flag: path for flag, path in outputs.items() if path}
    for out_flag, out in given.items():
        for in_flag, value in inputs.items():
            src = local_path(value)
            if src is not None and os.path.exists(out) and _same(out, src):
                raise InputError(f"{out_flag} {out}: is the input of {in_flag}; write the output to another path "
                                 "(an input is never overwritten, even with --force)")
        if os.path.isdir(out):
            raise InputError(f"{out_flag}: {out} is a directory; expected a file path")
        if os.path.lexists(out) and not force:
            raise InputError(f"{out_flag}: {out} already exists; add --force to overwrite it")
    paths = list(given.items())
    for i, (flag_a, a) in enumerate(paths):
        for flag_b, b in paths[i + 1:]:
            if _same(a, b):
                raise InputError(f"{flag_a} and {flag_b}: both name {a}; give two different paths")


def check_plot_path(plot: str | None, flag: str = "--plot") -> None:
    """Refuse a plot path whose extension matplotlib cannot write, or a directory (exit 2)."""
    if not plot:
        return
    if os.path.isdir(plot):
        raise InputError(f"{flag}: {plot} is a directory; expected a file such as {Path(plot) / 'plot.png'}")
    if Path(plot).suffix.lower() not in PLOT_EXTENSIONS:
        raise InputError(f"{flag}: {plot}: unsupported extension {Path(plot).suffix or '(none)'!r}; "
                         f"expected one of {', '.join(PLOT_EXTENSIONS)}")


class SafeStdout:
    """sys.stdout that never raises on a closed pipe or a full device: the first failure marks it
    gone (later writes are dropped) and stdout is pointed at /dev/null, so printing can never fail the
    work nor the interpreter's final flush. ``failure`` keeps the OSError's errno."""

    def __init__(self, stream):
        self._stream = stream
        self.failure: int | None = None

    def _gone(self, e: OSError) -> None:
        self.failure = e.errno or errno.EPIPE
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass

    def write(self, text) -> int:
        if self.failure is None:
            try:
                return self._stream.write(text)
            except OSError as e:
                self._gone(e)
        return len(text)

    def flush(self) -> None:
        if self.failure is None:
            try:
                self._stream.flush()
            except OSError as e:
                self._gone(e)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def guard_stdout() -> SafeStdout:
    """Replace ``sys.stdout`` by a :class:`SafeStdout` (once) and return it."""
    if not isinstance(sys.stdout, SafeStdout):
        sys.stdout = SafeStdout(sys.stdout)
    return sys.stdout


_RESULT_ON_STDOUT: list[bool] = [True]


def results_kept() -> None:
    """Mark the running command's results as kept beyond its stdout (a report file, the tracking store,
    downloaded files): a full stdout then only warns (:func:`stdout_lost_note`). Without it (``compare``,
    ``losses``, ``datasets``, ``--help``, an untracked run without ``-o``) stdout is the result, and a
    full stdout is exit 3."""
    _RESULT_ON_STDOUT[0] = False


def stdout_lost_note(code=0):
    """After the work: the exit code, told on stderr when stdout was full (a closed pipe stays quiet:
    ``evalkit ... | head`` stops reading on purpose).

    A command that keeps its results elsewhere (:func:`results_kept`: a report file, the tracking store)
    keeps its code and warns; one whose result was its stdout says the output was lost and exits 3 (an
    infrastructure fault: disk full), unless it already failed with another code.
    """
    out = sys.stdout
    out.flush()
    if not isinstance(out, SafeStdout) or out.failure in (None, errno.EPIPE):
        return code
    lost = _RESULT_ON_STDOUT[0]
    try:
        from evalkit.errors import os_cause

        cause = os_cause(OSError(out.failure, os.strerror(out.failure)))
        sys.stderr.write(f"error: stdout: {cause}; the output was lost\n" if lost else
                         f"warning: stdout: {cause}; the output was cut short (the results were kept)\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    return 3 if lost and code in (0, None) else code


DEFAULT_STORE = "sqlite:///mlruns/mlflow.db"

#: the input flags of ``run`` / ``evaluate``, by config field
_INPUT_FIELDS = ("dataset", "test_dataset", "predictions", "model", "preprocess", "label_map", "threshold", "baseline",
                 "weights")


def config_inputs(cfg, spec: str | None = None, names=None) -> dict[str, object]:
    """The input files of a :class:`~evalkit.config.RunConfig` / ``EvaluateJobConfig`` (and of its
    spec file), as ``{name: value}`` for :func:`check_outputs`: those it names, those it finds (a
    MULAN label file next to an ARFF file, a model's preprocessing record:
    :func:`evalkit.inputs.found_inputs`) and the tracking store's SQLite file. ``names`` (a
    :class:`~evalkit.cli.options.FieldNames`) names each field as the user gave it (a flag, or a spec
    key); default: the flags."""
    from evalkit.inputs import found_inputs

    def name(field: str) -> str:
        return names(field) if names is not None else "--" + field.replace("_", "-")

    fields = type(cfg).model_fields
    inputs: dict[str, object] = {name(f): getattr(cfg, f) for f in _INPUT_FIELDS if f in fields}
    inputs[name("label_file")] = (cfg.reader_options or {}).get("label_file")
    for what, path in found_inputs(cfg).items():  # "--dataset (the MULAN label file found next to it)"
        flag, _, why = what.partition(" ")
        inputs[f"{name(flag[2:].replace('-', '_'))} {why}"] = path
    inputs[name("tracking_uri")] = cfg.tracking_uri or DEFAULT_STORE
    if spec:
        inputs["SPEC" if "epochs" in fields else "--spec"] = spec
    return inputs


def check_config_outputs(configs, force: bool, spec: str | None = None, extra: dict | None = None,
                         output_flag: str = "-o/--output", names=None) -> None:
    """:func:`check_outputs` for the ``output`` (``-o``, named ``output_flag``, or by its spec key when
    the spec set it: ``names``, as in :func:`config_inputs`) of one or more configs against their inputs."""
    if names is not None and not names("output").startswith("--"):
        output_flag = names("output")  # set in the spec file: `output`, `evaluate.output`
    inputs: dict[str, object] = {}
    for i, cfg in enumerate(configs):
        inputs |= {(flag if i == 0 else f"{flag} (cell {i + 1})"): v
                   for flag, v in config_inputs(cfg, spec, names).items()}
    check_outputs({output_flag: configs[0].output, **(extra or {})}, inputs, force)
