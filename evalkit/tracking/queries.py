"""Reading the store: runs of an experiment, the run behind a model, run artifacts, gate baselines."""

from __future__ import annotations

from evalkit.errors import InfraError, InputError
from evalkit.tracking.redact import first_line, redact_uri, store_reason
from evalkit.tracking.store import client_for, mlflow_for


def search_runs(tracking_uri: str, experiment: str, *, filter_string: str = ""):
    """Runs of ``experiment`` as a pandas DataFrame (newest first); empty when none.

    Args:
        tracking_uri: a resolved URI. filter_string: an MLflow search filter.
    Raises:
        InputError (exit 2): the experiment does not exist.
    """
    mlflow = mlflow_for(tracking_uri)
    exp = mlflow.MlflowClient(tracking_uri).get_experiment_by_name(experiment)
    if exp is None:
        raise InputError(f"--experiment: no experiment named {experiment!r} in {redact_uri(tracking_uri)}")
    return mlflow.search_runs(
        experiment_ids=[exp.experiment_id],
        filter_string=filter_string,
        order_by=["attributes.start_time DESC"],
    )


def model_store_error(uri: str, tracking_uri: str, e: Exception) -> Exception:
    """The evalkit error for a failure to find / fetch the model ``uri``: InputError (exit 2) when
    MLflow says it does not exist, else InfraError (exit 3). Returned, not raised."""
    from mlflow.exceptions import MlflowException

    msg = first_line(e)
    code = getattr(e, "error_code", "") if isinstance(e, MlflowException) else ""
    if code == "RESOURCE_DOES_NOT_EXIST" or "not found" in msg.lower() or "does not exist" in msg.lower():
        return InputError(f"--model {uri}: not found in {redact_uri(tracking_uri)} ({msg}){registry_hint(uri)}")
    return InfraError(f"--model {uri}: cannot load the model from {redact_uri(tracking_uri)}: {msg}")


def registry_hint(uri: str) -> str:
    """How to create the registered model ``uri`` names (``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``):
    ``"; create it with: evalkit run --register NAME --alias ALIAS ..."``; ``""`` for other URIs."""
    ref = uri.removeprefix("models:/").strip("/") if uri.startswith("models:/") else ""
    name, alias = ref.split("@", 1) if "@" in ref else (ref.rsplit("/", 1)[0] if "/" in ref else "", None)
    if not name:
        return ""
    command = f"evalkit run --register {name}" + (f" --alias {alias}" if alias else "")
    return (f"; create it by training and registering a model with: {command} (that trains on the default "
            "dataset, yeast: add --dataset and the run's options for other data)")


def model_source_run(tracking_uri: str, uri: str) -> str | None:
    """The id of the run that logged the model ``uri`` (``runs:/<id>/<name>``, ``models:/<name>/<version>``,
    ``models:/<name>@<alias>``, ``models:/<model id>``), or None when it cannot be told.

    Raises:
        InputError (exit 2): the registered model, version or alias does not exist.
        InfraError (exit 3): the store is unreachable.
    """
    if uri.startswith("runs:/"):
        return uri[len("runs:/"):].strip("/").split("/", 1)[0] or None
    if not uri.startswith("models:/"):
        return None
    ref = uri[len("models:/"):].strip("/")
    client = client_for(tracking_uri)
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            mv = client.get_model_version_by_alias(name, alias)
        elif "/" in ref:
            name, version = ref.rsplit("/", 1)
            mv = client.get_model_version(name, version)
        else:  # a logged model id (MLflow 3: models:/m-...)
            return client.get_logged_model(ref).source_run_id
        if mv.run_id:
            return mv.run_id
        model_id = getattr(mv, "model_id", None)
        return client.get_logged_model(model_id).source_run_id if model_id else None
    except Exception as e:  # MlflowException, connection errors
        raise model_store_error(uri, tracking_uri, e) from None


def load_run_json(tracking_uri: str, run_id: str, artifact_file: str) -> dict | None:
    """A JSON artifact of a run (e.g. ``preprocess.json``, ``report.json``), or None when absent or
    unreadable. Never raises."""
    try:
        mlflow_for(tracking_uri)
        import mlflow.artifacts

        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{artifact_file}")
    except Exception:
        return None


def filter_string_value(text: str, field: str = "--baseline last: the job name",
                        advice: str = "; give --job NAME") -> str:
    """``text`` as a string value of an MLflow search filter: in single quotes, or in double quotes
    when it holds a single quote (a job named after a predictions file such as ``bob's.npz``).

    Raises:
        InputError: it holds both kinds of quote (MLflow's filters cannot escape them); the message
            starts with ``field`` and ends with ``advice``.
    """
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    raise InputError(f"{field} {text!r} holds both ' and \", which a store search cannot match{advice}")


def _last_finished_run(client, experiment: str, job: str | None):
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    flt = "attributes.status = 'FINISHED'"
    if job:
        flt += f" and tags.\"evalkit.job\" = {filter_string_value(job)}"
    runs = client.search_runs([exp.experiment_id], filter_string=flt, order_by=["attributes.start_time DESC"],
                              max_results=1)
    return runs[0] if runs else None


def baseline_run(tracking_uri: str, experiment: str, spec: str, *, job: str | None = None,
                 model_uri: str | None = None) -> dict:
    """The baseline of relative gates: ``{"run_id", "source", "metrics", "reason", "status", "digest"}``
    (``status``: the run's MLflow status, e.g. FINISHED or KILLED; ``digest``: its test data's digest,
    :func:`test_data_digest`).

    Reads run metrics only: no model is downloaded or loaded.

    Args:
        spec: ``last`` (the last FINISHED run of ``job`` in ``experiment``, by start time; run_id None
            when there is none yet), ``champion`` (the run that produced the version behind
            ``models:/<name>@champion``, name taken from ``model_uri``), ``models:/NAME@ALIAS`` /
            ``models:/NAME/VERSION``, or a run id (or its first :data:`MIN_PREFIX`+ digits, as
            evalkit's messages print it).
    Raises:
        InputError (exit 2): unknown run id (or a prefix of none or several), registered model,
            version or alias.
        InfraError (exit 3): the store is unreachable.
    """
    client = client_for(tracking_uri)
    source = spec
    try:
        if spec == "last":
            run = _last_finished_run(client, experiment, job)
            if run is None:
                return {"run_id": None, "source": "last", "metrics": {},
                        "reason": f"no earlier finished run of job {job!r} in experiment {experiment!r}"}
        else:
            if spec == "champion":
                name = (model_uri or "").removeprefix("models:/").split("@", 1)[0].split("/", 1)[0]
                source = f"models:/{name}@champion"
            run_id = (model_source_run(tracking_uri, source) if source.startswith("models:/")
                      else full_run_id(client, spec, f"--baseline {spec}", tracking_uri))
            if not run_id:
                raise InputError(f"--baseline {spec}: cannot tell which run produced {source}")
            run = client.get_run(run_id)
            refuse_deleted(run, f"--baseline {spec}: run {run_id}", "pick another --baseline")
    except (InputError, InfraError):
        raise
    except Exception as e:
        from mlflow.exceptions import MlflowException

        if isinstance(e, MlflowException) and getattr(e, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST",
                                                                               "INVALID_PARAMETER_VALUE"):
            raise InputError(f"--baseline {spec}: no such run in {redact_uri(tracking_uri)} ({store_reason(e)})") from None
        raise InfraError(f"--baseline {spec}: tracking store {redact_uri(tracking_uri)}: {store_reason(e)}") from None
    return {"run_id": run.info.run_id, "source": source, "metrics": dict(run.data.metrics), "reason": "",
            "status": run.info.status, "digest": test_data_digest(run)}


def refuse_deleted(run, where: str, hint: str) -> None:
    """Refuse a deleted run (in the store's trash; ``get_run`` still returns it by its full id, while a
    prefix or ``last`` never finds it). Raises InputError: ``WHERE is deleted; restore it ...; HINT``."""
    if getattr(run.info, "lifecycle_stage", "active") == "deleted":
        raise InputError(f"{where} is deleted (in the store's trash); restore it with `mlflow runs restore --run-id "
                         f"{run.info.run_id}`, or {hint}")


def test_data_digest(run) -> str | None:
    """The digest of the rows a run was evaluated on: its ``evaluation`` dataset input (``evaluate``
    and ``run`` log one, :meth:`evalkit.tracking.RunLogger.log_file_input` / ``log_dataset``), else
    the tag ``evalkit.input.evaluation`` (``NAME digest=HEX``) of a run synced from the spool; None
    for a run that predates digest tagging."""
    for inp in getattr(getattr(run, "inputs", None), "dataset_inputs", None) or []:
        if any(t.key == "mlflow.data.context" and t.value == "evaluation" for t in inp.tags or []):
            return inp.dataset.digest
    tag = run.data.tags.get("evalkit.input.evaluation") or ""
    return tag.rsplit("digest=", 1)[1].strip() if "digest=" in tag else None


def run_scores(tracking_uri: str, run_id: str, dst: str, *, flag: str) -> tuple[dict, str]:
    """Download a run's kept test scores (``scores.parquet``, :mod:`evalkit.scores_file`) into ``dst``.

    Returns:
        ``({"run_id", "run_name", "status", "digest", "params"}, local path)``; ``digest`` as
        :func:`test_data_digest`.
    Raises:
        InputError (exit 2, the line starts with ``flag``): no such run, or the run kept no scores.
        InfraError (exit 3): the store is unreachable.
    """
    from evalkit.scores_file import SCORES_FILE

    client = client_for(tracking_uri)
    where = f"{flag} {run_id}"
    try:
        run = client.get_run(full_run_id(client, run_id, where, tracking_uri))
        refuse_deleted(run, where, "name another run")
    except InputError:
        raise
    except Exception as e:
        from mlflow.exceptions import MlflowException

        if isinstance(e, MlflowException) and getattr(e, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST",
                                                                               "INVALID_PARAMETER_VALUE"):
            raise InputError(f"{where}: no such run in {redact_uri(tracking_uri)}; expected a run id "
                             f"(or its first {MIN_PREFIX}+ digits)") from None
        raise InfraError(f"{where}: tracking store {redact_uri(tracking_uri)}: {store_reason(e)}") from None
    info = {"run_id": run.info.run_id, "run_name": run.info.run_name, "status": run.info.status,
            "digest": test_data_digest(run), "params": dict(run.data.params)}
    run_id = run.info.run_id  # a prefix given: the full id from here on
    try:
        names = {f.path for f in client.list_artifacts(run_id)}
        if SCORES_FILE not in names:
            raise InputError(f"{where}: the run kept no {SCORES_FILE} (logged with --no-log-scores, or before "
                             "evalkit kept test scores); expected a run that logged its scores")
        return info, client.download_artifacts(run_id, SCORES_FILE, dst)
    except InputError:
        raise
    except Exception as e:
        raise InfraError(f"{where}: cannot read {SCORES_FILE} from {redact_uri(tracking_uri)}: {store_reason(e)}") from None


MIN_PREFIX = 6
"""Shortest run-id prefix :func:`full_run_id` looks up (evalkit's messages print the first 8 digits)."""


def full_run_id(client, run_id: str, where: str, tracking_uri: str) -> str:
    """``run_id`` itself, or the one run id that starts with it when it is a prefix of
    :data:`MIN_PREFIX` to 31 hex digits (as evalkit's messages print them), searched in every active
    experiment of the store.

    Raises:
        InputError (exit 2, the line starts with ``where``): no run id, or several, start with it.
    """
    import re

    if not re.fullmatch(rf"[0-9a-f]{{{MIN_PREFIX},31}}", run_id):
        return run_id
    ids, token = [], None
    while True:
        page = client.search_experiments(max_results=1000, page_token=token)
        ids += [e.experiment_id for e in page]
        token = page.token
        if not token:
            break
    found = client.search_runs(ids, filter_string=f"attributes.run_id LIKE '{run_id}%'", max_results=3) if ids else []
    if len(found) == 1:
        return found[0].info.run_id
    if not found:
        raise InputError(f"{where}: no run id starts with {run_id} in {redact_uri(tracking_uri)}")
    raise InputError(f"{where}: several run ids start with {run_id} ("
                     + ", ".join(r.info.run_id for r in found[:2]) + ", ...); give more digits")
