"""One MLflow run: :class:`RunLogger` (batched logging, final status, offline spooling)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from evalkit.errors import InfraError
from evalkit.tracking.redact import is_store_error, redact_text, redact_uri, store_failure
from evalkit.tracking.settings import TrackingSettings
from evalkit.tracking.signals import SignalGuard
from evalkit.tracking.store import (DEFAULT_TIMEOUT, absolute_uri, check_store, client_for,
                                    get_or_create_experiment, mlflow_for, retry_busy)


_TAGGED: set[tuple[str, str]] = set()  # (store, experiment id) whose UI tags are set (per process)


def tag_experiment(tracking_uri: str, experiment_id: str) -> None:
    """Set evalkit's experiment tags (:func:`evalkit.tracking.view.experiment_tags`: the training
    view and the shared runs view the MLflow UI opens on), once per process; a kind the user set
    (``mlflow.experimentKind``) is kept. Cosmetic: never raises."""
    if (tracking_uri, experiment_id) in _TAGGED:
        return
    from evalkit.tracking.view import EXPERIMENT_KIND_TAG, experiment_tags

    try:
        client = client_for(tracking_uri)
        current = retry_busy(lambda: client.get_experiment(experiment_id)).tags or {}
        for key, value in experiment_tags().items():
            if key in current and (key == EXPERIMENT_KIND_TAG or current[key] == value):
                continue
            retry_busy(lambda: client.set_experiment_tag(experiment_id, key, value))
        _TAGGED.add((tracking_uri, experiment_id))
    except Exception:  # the store's failures surface on the run's own calls
        pass


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM (exit code 143)."""


#: per-step metrics (training curves) are buffered and sent at most this often, in seconds
FLUSH_SECONDS = 5.0


class RunLogger:
    """One MLflow run as a context manager. Ends FINISHED, FAILED (exception) or KILLED
    (Ctrl-C / SIGTERM), never RUNNING. All metric and param logging is batched: per-step metrics
    (training curves) are buffered and sent every :data:`FLUSH_SECONDS` s and when the run ends.

    Nothing is lost when the store is down: if the run cannot be started (or ``offline_reason`` says
    the store was found unreachable beforehand), or a logging call fails mid-run, the logger goes
    offline, keeps what was not logged in a :class:`evalkit.tracking.spool.Journal`, writes it to the
    spool on exit (``self.spooled``) and raises :class:`InfraError` (exit 3) naming the spool
    directory; ``evalkit sync-spool`` uploads it later. Params and tags are redacted of credentials.

    Args:
        tracking_uri: the store: :class:`~evalkit.tracking.settings.TrackingSettings` (its ``timeout``
            then wins over ``timeout``), or a resolved URI (:func:`evalkit.tracking.resolve_tracking_uri`).
        experiment: experiment name (created when missing).
        run_name / tags: of the run. nested: a child of the active run (grid cells).
        offline_reason: the store is known to be down: spool everything, do not fail fast.
        spool: write the spool entry on exit when offline (default True).
        fail_fast: check the store on entry and raise InfraError ("nothing was run") when it does not
            answer (default: when ``offline_reason`` is None).
        timeout: seconds to wait for the store in that check (float).
    Raises:
        InfraError (exit 3): on entry (fail fast), or on a clean exit after spooling.
    """

    def __init__(self, tracking_uri: str | TrackingSettings, experiment: str, *, run_name: str | None = None,
                 tags: dict[str, str] | None = None, nested: bool = False, offline_reason: str | None = None,
                 spool: bool = True, fail_fast: bool | None = None, timeout: float = DEFAULT_TIMEOUT,
                 resume: str | None = None):
        if isinstance(tracking_uri, TrackingSettings):
            tracking_uri, timeout = tracking_uri.uri, tracking_uri.timeout
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.nested = nested
        self.run_id: str | None = None
        self.resume = resume  # a run id: continue that run (``evalkit run --resume``)
        self.offline: str | None = offline_reason
        self.spool = spool
        self.spooled: Path | None = None
        self.journal = None
        self.timeout = timeout
        self.registered_version: str | None = None
        self.fail_fast = offline_reason is None if fail_fast is None else fail_fast
        self._signals = SignalGuard()
        self._buffer: list[tuple[str, float, int, int]] = []  # (key, value, timestamp ms, step)
        self._lock = threading.Lock()
        self._flushed = time.monotonic()

    # -- lifecycle
    def __enter__(self) -> "RunLogger":
        self._signals.defer()  # a SIGTERM / Ctrl-C while the run starts waits for it (no run left RUNNING)
        try:
            self._start()
        except BaseException:
            self._signals.release(resend=False)
            raise
        if (exc := self._signals.interruption()) is not None:  # arrived while the run started: end it KILLED
            self.__exit__(type(exc), exc, None)
            raise exc
        self._signals.arm()
        return self

    def _start(self) -> None:
        from evalkit import __version__
        from evalkit.tracking.reap import process_tags
        from evalkit.tracking.spool import Journal

        tags = {k: redact_text(v) for k, v in {"evalkit.version": __version__, **process_tags(), **self.tags}.items()}
        self.journal = Journal(self.experiment, self.run_name, tracking_uri=redact_uri(absolute_uri(self.tracking_uri)))
        if self.fail_fast and not self.nested:
            check_store(self.tracking_uri, self.timeout)
        if not self.offline:
            try:
                mlflow = mlflow_for(self.tracking_uri)
                exp_id = get_or_create_experiment(self.tracking_uri, self.experiment, self.timeout)
                tag_experiment(self.tracking_uri, exp_id)
                run = retry_busy(lambda: mlflow.start_run(run_id=self.resume, experiment_id=exp_id,
                                                          run_name=self.run_name, tags=tags, nested=self.nested))
                self.run_id = run.info.run_id
                self.journal.run_id = self.run_id
            except InfraError as e:
                self.offline = str(e)
            except Exception as e:
                self.go_offline(e)
        if self.offline and self.run_id is None:
            self.journal.tags.update(tags)

    def __exit__(self, exc_type, exc, tb) -> None:
        self._signals.defer()  # a SIGTERM / Ctrl-C while the run ends waits until its status is set
        try:
            self._end(exc_type, exc)
        finally:  # a run that ends because of an error or an interrupt drops a signal that came meanwhile
            self._signals.release(resend=exc_type is None)

    def _end(self, exc_type, exc) -> None:
        self.flush()  # the buffered training curves, whatever ended the run
        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "KILLED"
            if exc is not None and (self.run_id is not None or self.offline):
                exc.run_killed = True  # the CLI says "MLflow run ended as KILLED" only when one did
        else:
            status = "FAILED"
        if self.run_id is not None:
            import mlflow

            if status == "FAILED" and exc is not None and not self.offline:
                self._note_failure(exc)
            final = "FAILED" if self.offline else status  # offline: FAILED until sync-spool sets the real one
            try:
                mlflow.end_run(status=final)  # pops the active run first, then sets the status
            except Exception:  # set it directly (SQLite busy: retried), never masking the original error
                try:
                    client = client_for(self.tracking_uri)
                    retry_busy(lambda: client.set_terminated(self.run_id, final))
                except Exception as e:
                    self.go_offline(e)
        if not self.offline:
            return
        where = ""
        if self.spool:
            from evalkit.errors import WriteError

            try:
                self.spooled, detour = self.journal.write_anywhere(status, self.offline)
                where = f"; nothing lost: results spooled to {self.spooled}" + (f" ({detour})" if detour else "") + \
                    " (upload later with `evalkit sync-spool`)"
            except WriteError as e:
                where = f"; the results could not be spooled either: {e}"
        if exc_type is None:
            raise InfraError(f"{self.offline}{where}")

    def _note_failure(self, exc: BaseException) -> None:
        """Tag the failed run with why (``evalkit.error``, e.g. out of memory); never raises."""
        from evalkit.errors import failure_note

        try:
            client_for(self.tracking_uri).set_tag(self.run_id, "evalkit.error", failure_note(exc))
        except Exception:  # a note must never mask the original error
            pass

    def go_offline(self, e: BaseException) -> None:
        """Switch to journaling (first failure wins as the reason); ``e``: the store error. Only a
        connection / timeout error reads "unreachable" (:func:`~evalkit.tracking.redact.store_failure`)."""
        if not self.offline:
            self.offline = store_failure(f"tracking store {redact_uri(self.tracking_uri)}", e)

    def do(self, call, journal) -> bool:
        """Run ``call()`` against the store (SQLite busy: retried); on failure, or when offline, run
        ``journal()`` instead. Returns True when logged to the store."""
        if not self.offline:
            try:
                retry_busy(call)
                return True
            except Exception as e:
                if not is_store_error(e):  # a bug or bad data (e.g. a figure that cannot render): not the store
                    raise
                self.go_offline(e)
        journal()
        return False

    # -- logging (batched)
    def log_params(self, params: dict[str, Any]) -> None:
        """Log params (values as ``str``, credentials redacted, at most 6000 characters), 100 per batch."""
        import mlflow

        clean = {k: redact_text("" if v is None else str(v))[:6000] for k, v in params.items()}
        items = list(clean.items())
        for i in range(0, len(items), 100):
            chunk = dict(items[i : i + 100])
            self.do(lambda: mlflow.log_params(chunk), lambda: self.journal.params.update(chunk))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Log ``metrics`` (name -> float) at ``step`` (default 0).

        With a ``step`` (a training curve: one call per epoch) the values are buffered, with the
        time of this call, and sent in one batch at most every :data:`FLUSH_SECONDS` s (one
        ``log_batch`` of up to 1000 values instead of a request per epoch) and when the run ends,
        whether FINISHED, FAILED or KILLED; only a hard kill (SIGKILL) loses the last seconds of
        them. Without a ``step`` they are sent at once, after what is buffered.
        """
        now = int(time.time() * 1000)
        with self._lock:  # curves of folds trained in worker processes arrive from helper threads
            self._buffer.extend((k, float(v), now, int(step or 0)) for k, v in metrics.items())
            due = step is None or len(self._buffer) >= 1000 or time.monotonic() - self._flushed >= FLUSH_SECONDS
        if due:
            self.flush()

    def flush(self) -> None:
        """Send the buffered metrics now (1000 per ``log_batch``; offline: to the journal). Thread-safe."""
        with self._lock:
            items, self._buffer = self._buffer, []
            self._flushed = time.monotonic()
        for i in range(0, len(items), 1000):
            chunk = items[i : i + 1000]
            self.do(lambda: self._send(chunk), lambda: self._journal(chunk))

    def _send(self, items: list[tuple[str, float, int, int]]) -> None:
        from mlflow.entities import Metric

        client_for(self.tracking_uri).log_batch(self.run_id, metrics=[Metric(k, v, ts, step) for k, v, ts, step in items])

    def _journal(self, items: list[tuple[str, float, int, int]]) -> None:
        for k, v, ts, step in items:
            self.journal.add_metrics({k: v}, step, ts)

    def set_tags(self, tags: dict[str, str]) -> None:
        """Set tags on the run (values redacted of credentials)."""
        import mlflow

        clean = {k: redact_text(v) for k, v in tags.items()}
        self.do(lambda: mlflow.set_tags(clean), lambda: self.journal.tags.update(clean))

    def log_dict(self, data: dict, artifact_file: str) -> None:
        """Log ``data`` as the JSON artifact ``artifact_file`` (e.g. ``report.json``)."""
        import json

        import mlflow

        self.do(lambda: mlflow.log_dict(data, artifact_file),
                lambda: self.journal.add_text(artifact_file, json.dumps(data, indent=2, default=str)))

    def log_table(self, frame, artifact_file: str) -> None:
        """Log a ``pandas.DataFrame`` as an MLflow table (``mlflow.log_table``: the JSON artifact
        ``artifact_file``, e.g. ``per_class.json``, that the UI's artifact view renders as a table).
        Offline: the same ``{"columns", "data"}`` JSON goes to the spool."""
        import mlflow

        self.do(lambda: mlflow.log_table(frame, artifact_file),
                lambda: self.journal.add_text(artifact_file, frame.to_json(orient="split", index=False)))

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Log a local file (copied at once when offline: it may be temporary)."""
        import mlflow

        self.do(lambda: mlflow.log_artifact(str(path), artifact_path),
                lambda: self.journal.add_file(path, artifact_path))

    def log_figure(self, figure, artifact_file: str) -> None:
        """Log a matplotlib figure as ``artifact_file`` (format from its suffix, default png)."""
        import io

        import mlflow

        def journal():
            buf = io.BytesIO()
            figure.savefig(buf, format=Path(artifact_file).suffix.lstrip(".") or "png")
            parent = str(Path(artifact_file).parent)
            self.journal.artifacts.append((Path(artifact_file).name, None if parent == "." else parent, buf.getvalue()))

        self.do(lambda: mlflow.log_figure(figure, artifact_file), journal)

    def log_model(self, model, input_example, *, name: str = "model", registered_model_name: str | None = None):
        """Log a torch model as a pickle-free pt2 (``torch.export``) MLflow model, registered as
        ``registered_model_name`` when given (``self.registered_version``). Offline: the model folder
        goes to the spool. Returns the model URI, or None when offline. See
        :func:`evalkit.tracking.registry.log_model`."""
        from evalkit.tracking.registry import log_model

        return log_model(self, model, input_example, name=name, registered_model_name=registered_model_name)

    def set_model_alias(self, name: str, alias: str, version: str | int | None = None) -> str | None:
        """Point ``models:/<name>@<alias>`` at ``version`` (default: the version just registered).

        Returns ``models:/<name>@<alias>``, or None when offline (nothing registered).
        Raises:
            InputError (exit 2): nothing registered in this run and no ``version`` given.
        """
        from evalkit.tracking.registry import set_alias

        return set_alias(self, name, alias, version)

    def registered_model(self, name: str, alias: str | None = None) -> str | None:
        """After :meth:`log_model` with ``registered_model_name=name``: set ``alias`` (if given) and
        describe the registration (``models:/NAME@ALIAS (version V)`` or ``models:/NAME/V``); None
        when nothing was registered because the store is down (the model is in the spool)."""
        from evalkit.tracking.registry import describe_registration

        return describe_registration(self, name, alias)

    def log_dataset(self, X, Y, *, name: str, digest: str, context: str, source: str | None = None) -> None:
        """Record the rows a run used as a run input (``mlflow.log_input``): ``context`` is
        ``training``, ``validation`` or ``evaluation``; ``digest`` is evalkit's full-content digest
        (:func:`evalkit.data.core.content_digest` via ``Dataset.digest``; MLflow's own samples the first
        rows), so equal content gets one digest whatever the entry point. The input's profile
        (``features_shape``, ``targets_shape``) is that of ``X`` / ``Y``: pass exactly the rows used.
        Offline: recorded as a tag."""
        import mlflow
        import mlflow.data

        import warnings

        with warnings.catch_warnings():  # a local path "can be interpreted in multiple ways" (all local)
            warnings.simplefilter("ignore")
            try:
                ds = mlflow.data.from_numpy(X, targets=Y, name=name, digest=digest, source=source)
            except Exception:  # a source MLflow cannot resolve ("builtin:yeast"): the code location
                ds = mlflow.data.from_numpy(X, targets=Y, name=name, digest=digest)
        self.do(lambda: mlflow.log_input(ds, context=context),
                lambda: self.journal.tags.update({f"evalkit.input.{context}": f"{name} digest={digest}"}))

    def log_file_input(self, path: str | None, *, name: str, digest: str, context: str, profile: dict) -> None:
        """Record data the run read without keeping the arrays (a predictions file, an evaluated test
        split) as a run input: ``path`` as the source (a built-in dataset name: named in the source),
        ``digest`` and ``profile`` (``num_rows``, ``targets_shape``) as given."""
        import mlflow

        def call():
            mlflow.log_input(_file_dataset(path, name, digest, profile), context=context)

        self.do(call, lambda: self.journal.tags.update({f"evalkit.input.{context}": f"{name} digest={digest}"}))

    def link_model(self, model_id: str) -> None:
        """Link the run to the MLflow logged model it evaluated (a model input: the runs table's
        Models column, the model page's runs). Offline: recorded as the tag ``evalkit.model_id``."""
        from mlflow.entities import LoggedModelInput

        self.do(lambda: client_for(self.tracking_uri).log_inputs(self.run_id, models=[LoggedModelInput(model_id)]),
                lambda: self.journal.tags.update({"evalkit.model_id": model_id}))


def _file_dataset(path: str, name: str, digest: str, profile: dict):
    """An MLflow dataset for a file: MLflow's ``MetaDataset`` (source + digest) with a profile."""
    import warnings
    from pathlib import Path

    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    class FileDataset(MetaDataset):
        @property
        def profile(self):
            return dict(profile)

        def to_dict(self):
            import json

            return super().to_dict() | {"profile": json.dumps(self.profile)}

    if path and Path(path).exists():
        with warnings.catch_warnings():  # "can be interpreted in multiple ways": all local sources
            warnings.simplefilter("ignore")
            source = resolve_dataset_source(str(Path(path).resolve()))
    else:  # a built-in dataset ("yeast"): named in the source's tags
        from mlflow.data.code_dataset_source import CodeDatasetSource

        source = CodeDatasetSource({"evalkit.dataset": str(path or name)})
    return FileDataset(source, name=name, digest=digest)


def logged_model_id(tracking_uri: str, model_uri: str) -> str | None:
    """The MLflow logged model (``m-...``) behind ``model_uri``: ``models:/NAME@ALIAS``,
    ``models:/NAME/VERSION``, ``models:/m-ID`` or ``runs:/RUN_ID/NAME``; None for a file, or when it
    cannot be found (a model logged before MLflow 3, an unreachable store). Never raises."""
    if not model_uri.startswith(("models:/", "runs:/")):
        return None
    try:
        client = client_for(tracking_uri)
        rest = model_uri.split(":/", 1)[1].strip("/")
        if model_uri.startswith("models:/"):
            if "@" in rest or "/" in rest:
                if "@" in rest:
                    name, alias = rest.split("@", 1)
                    mv = retry_busy(lambda: client.get_model_version_by_alias(name, alias))
                else:
                    name, version = rest.rsplit("/", 1)
                    mv = retry_busy(lambda: client.get_model_version(name, version))
                if mv.model_id:
                    return mv.model_id
                # a SQLite store leaves model_id empty; the version's source is the logged model
                source = mv.source or ""
                if source.startswith("models:/m-"):
                    return retry_busy(lambda: client.get_logged_model(source.split("/", 2)[-1].strip("/"))).model_id
                if not mv.run_id:
                    return None
                run_id, name = mv.run_id, "model"
            else:
                return retry_busy(lambda: client.get_logged_model(rest)).model_id
        else:
            run_id, _, name = rest.partition("/")
        run = retry_busy(lambda: client.get_run(run_id))
        found = retry_busy(lambda: client.search_logged_models(
            experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'"))
        match = [m for m in found if m.name == (name or "model")] or list(found)
        return match[0].model_id if match else None
    except Exception:
        return None


def log_figure_to_run(tracking_uri: str, run_id: str, figure, artifact_file: str) -> None:
    """Log a matplotlib figure to an existing (e.g. finished grid parent) run.

    Raises:
        Exception: MLflow / connection errors, as raised by MLflow.
    """
    client_for(tracking_uri).log_figure(run_id, figure, artifact_file)
