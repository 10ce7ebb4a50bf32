"""Everything MLflow, as a package (mlflow itself is imported lazily, inside functions: it costs ~3 s).

* :mod:`~evalkit.tracking.settings`: :class:`TrackingSettings` (store URI and timeout, passed explicitly);
* :mod:`~evalkit.tracking.store`: tracking URI resolution (pure), store preparation, HTTP limits,
  probes, the SQLite init lock, experiments;
* :mod:`~evalkit.tracking.run`: :class:`RunLogger` (one run: batched logging, final status, spooling);
* :mod:`~evalkit.tracking.registry`: logging the run's model (pt2 only) and registering it / aliases;
* :mod:`~evalkit.tracking.queries`: searching runs, the run behind a model, run artifacts, baselines;
* :mod:`~evalkit.tracking.loading`: loading logged models (refusing pickled content unless trusted);
* :mod:`~evalkit.tracking.spool`: the local spool journal and ``sync-spool``;
* :mod:`~evalkit.tracking.mlflow_compat`: the only user of private MLflow APIs;
* :mod:`~evalkit.tracking.redact`: credential redaction and one-line error reasons.

The names below are re-exported so ``from evalkit.tracking import X`` keeps working.
"""

from __future__ import annotations

from evalkit.direction import LOWER_IS_BETTER, lower_is_better
from evalkit.tracking.loading import load_logged_model, pickle_refusal, verify_pt2_file
from evalkit.tracking.queries import baseline_run, load_run_json, model_source_run, search_runs
from evalkit.tracking.redact import SECRET_ENV, first_line, redact_text, redact_uri, store_reason
from evalkit.tracking.run import RunLogger, Terminated, log_figure_to_run
from evalkit.tracking.settings import TrackingSettings
from evalkit.tracking.spool import sync_spool
from evalkit.tracking.store import (DEFAULT_DB, DEFAULT_STORE_DIR, DEFAULT_TIMEOUT, KNOWN_SCHEMES, absolute_uri,
                                    check_store, configure_http, default_artifact_location, ensure_store,
                                    get_or_create_experiment, prepare_store, probe_store, resolve_tracking_uri,
                                    start_probe)

__all__ = [
    "DEFAULT_DB", "DEFAULT_STORE_DIR", "DEFAULT_TIMEOUT", "KNOWN_SCHEMES", "LOWER_IS_BETTER", "SECRET_ENV",
    "RunLogger", "Terminated", "TrackingSettings", "absolute_uri", "baseline_run", "check_store", "configure_http",
    "default_artifact_location", "ensure_store", "first_line", "get_or_create_experiment", "load_logged_model",
    "load_run_json", "log_figure_to_run", "lower_is_better", "model_source_run", "pickle_refusal", "prepare_store",
    "probe_store", "redact_text", "redact_uri", "resolve_tracking_uri", "search_runs", "start_probe",
    "store_reason", "sync_spool", "verify_pt2_file",
]
