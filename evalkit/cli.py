"""The ``evalkit`` command line: a thin typed layer over :mod:`evalkit.api`.

Exit codes: 0 success (all gates pass), 1 a gate failed, 2 bad input or usage,
3 infrastructure fault (tracking store unreachable, model not loadable), 130/143 interrupted.
Add ``--debug`` anywhere to see the traceback of an error.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from enum import Enum
from typing import Annotated, Optional

import typer

from evalkit.errors import EXIT_BAD_INPUT, EvalkitError

app = typer.Typer(
    name="evalkit",
    help="Multi-label classification experiments: train with a chosen loss, evaluate exactly, track in MLflow.\n\n"
    "Exit codes: 0 ok, 1 a quality gate failed, 2 bad input or usage, 3 infrastructure fault "
    "(tracking store unreachable, model not loadable), 130/143 interrupted. "
    "Add --debug to any command to show tracebacks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DEBUG = False


def _console(stderr: bool = False):
    import os

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # logs of cron jobs and CI are not terminals: rich would wrap tables at 80 columns
    width = None if stream.isatty() or "COLUMNS" in os.environ else 160
    return Console(stderr=stderr, highlight=False, width=width)


@contextmanager
def user_errors():
    """Turn evalkit / validation errors into one line on stderr and the documented exit code."""
    try:
        yield
    except EvalkitError as e:
        if DEBUG:
            raise
        _console(stderr=True).print(f"[red]error:[/] {e}", markup=True, soft_wrap=True)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt as e:
        from evalkit.tracking import Terminated

        code = 143 if isinstance(e, Terminated) else 130
        _console(stderr=True).print(f"interrupted ({'SIGTERM' if code == 143 else 'Ctrl-C'}); MLflow run ended as KILLED")
        raise typer.Exit(code) from None


def _validation_message(err, source: str = "options") -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "value"
        parts.append(f"{loc}: {e['msg']}")
    return f"{source}: " + "; ".join(parts)


def _parse_kv(items: list[str] | None, option: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise EvalkitError(f"{option}: expected KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _parse_hidden(text: str) -> list[int]:
    try:
        sizes = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise EvalkitError(f"--hidden: expected comma-separated layer sizes such as 256 or 512,256, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise EvalkitError(f"--hidden: expected positive layer sizes such as 256 or 512,256, got {text!r}")
    return sizes


def _reader_options(label_file=None, label_columns=None, label_prefix=None, label_list_column=None,
                    label_sep=None) -> dict[str, str]:
    """Dataset reader options given on the command line (see `evalkit datasets`)."""
    given = {"label_file": label_file, "label_columns": label_columns, "label_prefix": label_prefix,
             "label_list_column": label_list_column, "label_sep": label_sep}
    return {k: v for k, v in given.items() if v is not None}


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


@app.command()
def run(
    spec: Annotated[Optional[str], typer.Argument(help="Experiment spec (experiments/*.toml): RunConfig fields and an optional [grid]; flags override it.")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Built-in dataset name (yeast) or a data file.")] = None,
    test_dataset: Annotated[Optional[str], typer.Option(help="Test file; default: the standard split or a stratified split.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Architecture: mlp, linear, or cnn (images (N, 3, H, W) from .npz).")] = None,
    hidden: Annotated[Optional[str], typer.Option(help="MLP hidden sizes, e.g. 256 or 512,256.")] = None,
    dropout: Annotated[Optional[float], typer.Option(help="Dropout after each hidden layer, in [0, 1).")] = None,
    loss: Annotated[Optional[str], typer.Option(help="bce, bce-pos-weight, soft-margin, margin, focal, asl (see `evalkit losses`).")] = None,
    loss_option: Annotated[Optional[list[str]], typer.Option(help="Loss option KEY=VALUE, repeatable (e.g. gamma=2).")] = None,
    optimizer: Annotated[Optional[str], typer.Option(help="adam or adamw.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate.")] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="Weight decay.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Maximum epochs.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Mini-batch size.")] = None,
    patience: Annotated[Optional[int], typer.Option(help="Early-stopping patience in epochs.")] = None,
    monitor: Annotated[Optional[str], typer.Option(help="Early stopping on val_loss, val_map, val_micro_f2, val_macro_f2 or none.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed (splits, init, shuffling).")] = None,
    device: Annotated[Optional[Device], typer.Option(help="auto picks CUDA when available.")] = None,
    threshold: Annotated[Optional[str], typer.Option(help="global (default), per-class, fixed:T, top-k:K or pcut; fitted on validation only.")] = None,
    objective: Annotated[Optional[str], typer.Option(help="What global / per-class-fallback tuning maximises: micro-fbeta (default) or macro-fbeta, with --beta.")] = None,
    input_noise: Annotated[Optional[float], typer.Option(help="Std of Gaussian noise added to the standardised training features (0 = off).")] = None,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads for torch (default 1: fastest for small MLPs, above all on shared cores).")] = None,
    folds: Annotated[Optional[int], typer.Option(help="Cross-fitting: K models on K folds of train + validation, thresholds tuned on out-of-fold scores (default 5); 1 = one model and a validation split.")] = None,
    beta: Annotated[Optional[float], typer.Option(help="Beta of the reported F-beta (2 = recall weighs 4x).")] = None,
    experiment: Annotated[Optional[str], typer.Option(help="MLflow experiment name.")] = None,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI (default sqlite:///mlruns/mlflow.db).")] = None,
    run_name: Annotated[Optional[str], typer.Option(help="MLflow run name.")] = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Write the report JSON here.")] = None,
    log_model: Annotated[Optional[bool], typer.Option("--log-model/--no-log-model", help="Log the model to MLflow.")] = None,
    register: Annotated[Optional[str], typer.Option(help="Register the logged model under NAME in the MLflow model registry.")] = None,
    alias: Annotated[Optional[str], typer.Option(help="Point this alias (e.g. champion) of --register NAME at the new version.")] = None,
    label_file: Annotated[Optional[str], typer.Option(help="ARFF: MULAN label XML (default: <name>.xml next to the data).")] = None,
    label_columns: Annotated[Optional[str], typer.Option(help="CSV/Parquet: label columns, e.g. a,b,c.")] = None,
    label_prefix: Annotated[Optional[str], typer.Option(help="CSV/Parquet: every column starting with this prefix is a label.")] = None,
    label_list_column: Annotated[Optional[str], typer.Option(help="CSV/Parquet: one column holding each row's label names.")] = None,
    label_sep: Annotated[Optional[str], typer.Option(help='Separator of --label-list-column (default ";").')] = None,
    test_size: Annotated[Optional[float], typer.Option(help="Test fraction of a stratified split when there is no test file (default 0.3).")] = None,
) -> None:
    """Train a model on a dataset with a chosen loss, evaluate it on the test split, log to MLflow.

    Data files: see `evalkit datasets` for the formats and the --label-* options.
    """
    with user_errors():
        from pydantic import ValidationError

        from evalkit.api import run_experiment
        from evalkit.config import RunConfig

        given = {
            "dataset": dataset, "test_dataset": test_dataset, "model": model, "dropout": dropout, "loss": loss,
            "optimizer": optimizer, "lr": lr, "weight_decay": weight_decay, "epochs": epochs,
            "batch_size": batch_size, "patience": patience, "monitor": monitor, "seed": seed,
            "device": device.value if device else None, "threshold": threshold, "objective": objective, "input_noise": input_noise, "folds": folds, "threads": threads, "beta": beta,
            "experiment": experiment, "tracking_uri": tracking_uri, "run_name": run_name, "output": output,
            "log_model": log_model, "register_model": register, "alias": alias, "test_size": test_size,
        }
        overrides = {k: v for k, v in given.items() if v is not None}
        reader_options = _reader_options(label_file, label_columns, label_prefix, label_list_column, label_sep)
        if reader_options:
            overrides["reader_options"] = reader_options
        if hidden is not None:
            overrides["hidden"] = _parse_hidden(hidden)
        if loss_option:
            overrides["loss_options"] = _parse_kv(loss_option, "--loss-option")
        if spec is not None:
            from evalkit.api import run_spec

            run_spec(spec, overrides, _console())
            return
        try:
            config = RunConfig(**overrides)
        except ValidationError as e:
            raise EvalkitError(_validation_message(e)) from None
        run_experiment(config, _console())


@app.command()
def losses() -> None:
    """List the available losses with their options and documented defaults."""
    from rich.table import Table

    from evalkit.losses import LOSSES

    t = Table(title="Losses (--loss NAME, options with --loss-option KEY=VALUE)", title_justify="left", show_lines=True)
    for col in ("name", "what it is", "when it helps", "options (default)"):
        t.add_column(col)
    for spec in LOSSES.values():
        opts = "\n".join(f"{k}={v[0]:g}: {v[1]}" for k, v in spec.options.items()) or "—"
        t.add_row(spec.name, spec.summary, spec.when, opts)
    _console().print(t)


@app.command()
def datasets() -> None:
    """List the built-in datasets and the data file formats `--dataset FILE` accepts."""
    from rich.table import Table

    from evalkit.data.builtin import BUILTINS
    from evalkit.data.readers import FORMATS

    console = _console()
    t = Table(title="Built-in datasets (--dataset NAME)", title_justify="left")
    t.add_column("name")
    t.add_column("description")
    for name, text in BUILTINS.items():
        t.add_row(name, text)
    console.print(t)
    f = Table(title="File formats (--dataset FILE [--test-dataset FILE])", title_justify="left", show_lines=True)
    f.add_column("extension")
    f.add_column("what it holds")
    for ext, text in FORMATS.items():
        f.add_row(ext, text)
    console.print(f)
    console.print("Label options: --label-file XML (ARFF), --label-columns a,b,c | --label-prefix P | "
                  "--label-list-column COL [--label-sep ';'] (CSV/Parquet). Without --test-dataset and without a "
                  "standard split, --test-size (default 0.3) of the data is held out by a seeded stratified split.")


@app.command()
def compare(
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = "evalkit",
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI (default sqlite:///mlruns/mlflow.db).")] = None,
    format: Annotated[Format, typer.Option("--format", help="table, csv, json or markdown.")] = Format.table,
    metric: Annotated[Optional[list[str]], typer.Option(help="Metric column, repeatable (default: headline test metrics).")] = None,
    group_by: Annotated[str, typer.Option(help="Group runs by this param (mean ± std, ranking, paired test over seeds); 'none' lists every run.")] = "loss",
    parent: Annotated[Optional[str], typer.Option(help="Compare the child runs of this grid parent run (default: the latest grid's, if any).")] = None,
    rank_by: Annotated[Optional[str], typer.Option(help="Metric that ranks the groups (default: the first metric).")] = None,
    log_plot: Annotated[bool, typer.Option("--log-plot", help="Log the grouped bar chart to the grid's parent run.")] = False,
    trigger: Annotated[Optional[str], typer.Option(help="History mode: the runs tagged evalkit.trigger=TRIGGER (scheduled, manual) over time, as a table and --plot.")] = None,
    job: Annotated[Optional[str], typer.Option(help="History mode: only the runs of this job (tag evalkit.job).")] = None,
    plot: Annotated[Optional[str], typer.Option(help="Save a PNG: the grouped bar chart (with error bars), or in history mode the metrics over time.")] = None,
) -> None:
    """Compare the runs of an experiment: grouped by loss (mean ± std over seeds, ranked, with a paired
    significance test of the best group's lead), or one row per run with --group-by none.

    With --trigger / --job: the history of a scheduled job (oldest first) and its trend (--plot FILE).
    """
    with user_errors():
        from evalkit.tracking import resolve_tracking_uri

        uri = resolve_tracking_uri(tracking_uri)
        if trigger or job:
            from evalkit.history import DEFAULT_METRICS, show_history

            show_history(uri, experiment, _console(), tuple(metric or DEFAULT_METRICS), trigger=trigger, job=job,
                         plot=plot, fmt=format.value)
            return
        from evalkit.compare import show_compare

        show_compare(uri, experiment, _console(), group_by=None if group_by.lower() == "none" else group_by,
                     metrics=tuple(metric) if metric else None, parent=parent, rank_by=rank_by, fmt=format.value,
                     plot=plot, log_plot=log_plot)


class ThresholdFree(str, Enum):
    exact = "exact"
    streaming = "streaming"
    none = "none"


class Trigger(str, Enum):
    manual = "manual"
    scheduled = "scheduled"


def _load_spec(ctx: typer.Context, value: Optional[str]) -> Optional[str]:
    """``--spec FILE`` (eager): the ``[evaluate]`` table of a TOML job spec becomes the defaults of
    the other options; options given on the command line win."""
    if value:
        with user_errors():
            from evalkit.gates import load_evaluate_spec

            ctx.default_map = {**(ctx.default_map or {}), **load_evaluate_spec(value)}
    return value


@app.command()
def evaluate(
    ctx: typer.Context,
    predictions: Annotated[Optional[str], typer.Option(help="Predictions file: .npz (targets + logits or probabilities), .parquet or .csv.")] = None,
    threshold: Annotated[Optional[str], typer.Option(help="A cut in (0, 1), a comma list (one per label), or a JSON/CSV file of per-label cuts. Default 0.5; with --model: the thresholds its run chose.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Model to evaluate: runs:/<id>/<name>, models:/<name>/<version>, models:/<name>@<alias>, or a TorchScript / .pt2 / state_dict file.")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="With --model: built-in name or data file, evaluated on its test split (default: the model's training data).")] = None,
    test_dataset: Annotated[Optional[str], typer.Option(help="With --model: a test file, evaluated whole.")] = None,
    arch: Annotated[Optional[str], typer.Option(help="Architecture of a state_dict file: linear, mlp or cnn.")] = None,
    hidden: Annotated[Optional[str], typer.Option(help="MLP hidden sizes of a state_dict file, e.g. 256 or 512,256.")] = None,
    trust_pickle: Annotated[bool, typer.Option("--trust-pickle", help="Allow loading a pickled full model (runs code from the file: trusted files only).")] = False,
    preprocess: Annotated[Optional[str], typer.Option(help="preprocess.json of a model file (default: <model>.preprocess.json or preprocess.json next to it).")] = None,
    scores: Annotated[Optional[str], typer.Option(help="What --model outputs: logits (default) or probabilities (the model ends with a sigmoid).")] = None,
    device: Annotated[Device, typer.Option(help="With --model: auto picks CUDA when available.")] = Device.auto,
    amp: Annotated[Optional[str], typer.Option(help="With --model on CUDA: bf16 or fp16 autocast (ignored on CPU).")] = None,
    label_map: Annotated[Optional[str], typer.Option(help="With --model: CSV (source,target) or JSON {source: target} mapping labels to a coarser set.")] = None,
    map_reduce: Annotated[str, typer.Option(help="How --label-map combines source probabilities: max, sum (clipped to 1) or mean.")] = "max",
    label_file: Annotated[Optional[str], typer.Option(help="ARFF: MULAN label XML (default: <name>.xml next to the data).")] = None,
    label_columns: Annotated[Optional[str], typer.Option(help="CSV/Parquet: label columns, e.g. a,b,c.")] = None,
    label_prefix: Annotated[Optional[str], typer.Option(help="CSV/Parquet: every column starting with this prefix is a label.")] = None,
    label_list_column: Annotated[Optional[str], typer.Option(help="CSV/Parquet: one column holding each row's label names.")] = None,
    label_sep: Annotated[Optional[str], typer.Option(help='Separator of --label-list-column (default ";").')] = None,
    beta: Annotated[float, typer.Option(help="Beta of the reported F-beta.")] = 2.0,
    threshold_free: Annotated[ThresholdFree, typer.Option(help="exact (matches scikit-learn), streaming (O(C x bins) memory) or none.")] = ThresholdFree.exact,
    batch_size: Annotated[int, typer.Option(help="Rows read per batch.")] = 65536,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Write the report JSON here.")] = None,
    per_class: Annotated[bool, typer.Option("--per-class/--no-per-class", help="Print the per-class table.")] = True,
    gate: Annotated[Optional[list[str]], typer.Option(help='Gate METRIC OP NUMBER (OP: >=, >, <=, <), repeatable, e.g. "test/macro_f2>=0.55"; exit 1 when one fails.')] = None,
    baseline: Annotated[Optional[str], typer.Option(help="Baseline of --max-drop: last (last finished run of this --job), champion (run behind models:/NAME@champion), models:/NAME@ALIAS, or a run id.")] = None,
    max_drop: Annotated[Optional[list[str]], typer.Option(help="Relative gate METRIC=AMOUNT: at most AMOUNT worse than the baseline, repeatable, e.g. test/macro_f2=0.01.")] = None,
    trigger: Annotated[Trigger, typer.Option(help="Tag evalkit.trigger of the MLflow run: manual or scheduled (cron / CI).")] = Trigger.manual,
    job: Annotated[Optional[str], typer.Option(help="Job name (tag evalkit.job; --baseline last compares within it); default: the predictions file name.")] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = "evalkit",
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI (default sqlite:///mlruns/mlflow.db).")] = None,
    track: Annotated[bool, typer.Option("--track/--no-track", help="Log the evaluation as an MLflow run.")] = True,
    tracking_timeout: Annotated[float, typer.Option(help="Seconds to wait for the tracking store before failing with exit 3 (results are spooled to mlruns/spool; see sync-spool).")] = 10.0,
    spec: Annotated[Optional[str], typer.Option(help="TOML job spec; its \\[evaluate] table sets these options (the command line wins).", callback=_load_spec, is_eager=True)] = None,
) -> None:
    """Evaluate existing predictions (or a model) with the same report as `evalkit run`.

    Exit codes: 0 all gates pass, 1 a gate failed, 2 bad input or usage, 3 infrastructure fault
    (tracking store unreachable: the report is still written and the run spooled locally).
    """
    with user_errors():
        from pathlib import Path

        from evalkit.api import evaluate_predictions
        from evalkit.gates import EvalJob
        from evalkit.report import render

        if (predictions is None) == (model is None):
            raise EvalkitError("evaluate: give either --predictions FILE or --model SPEC")
        job_ = EvalJob.create(gates=gate, max_drops=max_drop, baseline=baseline, trigger=trigger.value,
                              job=job or (Path(predictions).name if predictions else model), experiment=experiment,
                              tracking_uri=tracking_uri, track=track, tracking_timeout=tracking_timeout, output=output,
                              model_uri=model, params={"predictions": predictions} if predictions else
                              {"model": model, "dataset": dataset or "", "test_dataset": test_dataset or ""})
        if model is not None:
            from evalkit.api import evaluate_model

            report = evaluate_model(
                model, dataset, test_dataset, arch=arch, hidden=_parse_hidden(hidden) if hidden else None,
                reader_options=_reader_options(label_file, label_columns, label_prefix, label_list_column, label_sep) or None,
                trust_pickle=trust_pickle, preprocess=preprocess, threshold=threshold, beta=beta,
                scores=scores or "logits", device=device.value, amp=amp, batch_size=batch_size, label_map=label_map,
                map_reduce=map_reduce, threshold_free=threshold_free.value, tracking_uri=tracking_uri,
                console=_console(stderr=True))
        else:
            report = evaluate_predictions(predictions, threshold=threshold or "0.5", beta=beta,
                                          threshold_free=threshold_free.value, batch_size=batch_size)
        console = _console()
        render(report, console, per_class=per_class, title="Model" if model else "Predictions")
        code = job_.finish(report, console)
        if code:
            raise typer.Exit(code)


@app.command("sync-spool")
def sync_spool(
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI to upload to (default: $MLFLOW_TRACKING_URI, else the store each run was meant for, else sqlite:///mlruns/mlflow.db).")] = None,
    spool_dir: Annotated[Optional[str], typer.Option(help="Spool directory (default $EVALKIT_SPOOL_DIR or mlruns/spool).")] = None,
    tracking_timeout: Annotated[float, typer.Option(help="Seconds to wait for the tracking store.")] = 10.0,
) -> None:
    """Upload runs spooled while the tracking store was unreachable; each is removed once uploaded.

    Exit codes: 0 all uploaded (or nothing to do), 3 the store is unreachable or some runs were kept.
    """
    with user_errors():
        from evalkit.errors import InfraError
        from evalkit.tracking import resolve_tracking_uri
        from evalkit.tracking import sync_spool as upload

        if tracking_uri:
            resolve_tracking_uri(tracking_uri)  # malformed URI: exit 2
        console = _console()
        done, left = upload(tracking_uri, spool_dir, console, timeout=tracking_timeout)
        console.print(f"{done} spooled run(s) uploaded; {left} left")
        if left:
            raise InfraError(f"sync-spool: {left} spooled run(s) could not be uploaded; they are kept")


def main() -> None:
    """Console-script entry point (handles ``--debug`` anywhere on the line)."""
    global DEBUG
    if "--debug" in sys.argv[1:]:
        DEBUG = True
        sys.argv = [a for a in sys.argv if a != "--debug"]
    app()


if __name__ == "__main__":
    main()
