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
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


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


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


@app.command()
def run(
    dataset: Annotated[Optional[str], typer.Option(help="Built-in dataset name (yeast) or a data file.")] = None,
    test_dataset: Annotated[Optional[str], typer.Option(help="Test file; default: the standard split or a stratified split.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Architecture: mlp or linear.")] = None,
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
    threshold: Annotated[Optional[str], typer.Option(help="fixed:T or per-class (fitted on validation).")] = None,
    beta: Annotated[Optional[float], typer.Option(help="Beta of the reported F-beta (2 = recall weighs 4x).")] = None,
    experiment: Annotated[Optional[str], typer.Option(help="MLflow experiment name.")] = None,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI (default sqlite:///mlruns/mlflow.db).")] = None,
    run_name: Annotated[Optional[str], typer.Option(help="MLflow run name.")] = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Write the report JSON here.")] = None,
    log_model: Annotated[Optional[bool], typer.Option("--log-model/--no-log-model", help="Log the model to MLflow.")] = None,
) -> None:
    """Train a model on a dataset with a chosen loss, evaluate it on the test split, log to MLflow."""
    with user_errors():
        from pydantic import ValidationError

        from evalkit.api import run_experiment
        from evalkit.config import RunConfig

        given = {
            "dataset": dataset, "test_dataset": test_dataset, "model": model, "dropout": dropout, "loss": loss,
            "optimizer": optimizer, "lr": lr, "weight_decay": weight_decay, "epochs": epochs,
            "batch_size": batch_size, "patience": patience, "monitor": monitor, "seed": seed,
            "device": device.value if device else None, "threshold": threshold, "beta": beta,
            "experiment": experiment, "tracking_uri": tracking_uri, "run_name": run_name, "output": output,
            "log_model": log_model,
        }
        overrides = {k: v for k, v in given.items() if v is not None}
        if hidden is not None:
            overrides["hidden"] = _parse_hidden(hidden)
        if loss_option:
            overrides["loss_options"] = _parse_kv(loss_option, "--loss-option")
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
def compare(
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = "evalkit",
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI (default sqlite:///mlruns/mlflow.db).")] = None,
    format: Annotated[Format, typer.Option("--format", help="table, csv or json.")] = Format.table,
    metric: Annotated[Optional[list[str]], typer.Option(help="Metric column, repeatable (default: headline test metrics).")] = None,
) -> None:
    """Show the runs of an experiment side by side; the best value per column is highlighted."""
    with user_errors():
        from evalkit.compare import HEADLINE, render_table, runs_frame
        from evalkit.tracking import resolve_tracking_uri

        uri = resolve_tracking_uri(tracking_uri)
        metrics = tuple(metric) if metric else HEADLINE
        df = runs_frame(uri, experiment, metrics)
        if format is Format.csv:
            sys.stdout.write(df.to_csv(index=False))
        elif format is Format.json:
            sys.stdout.write(df.to_json(orient="records", indent=2, date_format="iso") + "\n")
        else:
            render_table(df, _console(), metrics, title=f"Experiment '{experiment}': {len(df)} runs")


class ThresholdFree(str, Enum):
    exact = "exact"
    streaming = "streaming"
    none = "none"


@app.command()
def evaluate(
    predictions: Annotated[Optional[str], typer.Option(help="Predictions file: .npz (targets + logits or probabilities), .parquet or .csv.")] = None,
    threshold: Annotated[str, typer.Option(help="A cut in (0, 1), a comma list (one per label), or a JSON/CSV file of per-label cuts.")] = "0.5",
    beta: Annotated[float, typer.Option(help="Beta of the reported F-beta.")] = 2.0,
    threshold_free: Annotated[ThresholdFree, typer.Option(help="exact (matches scikit-learn), streaming (O(C x bins) memory) or none.")] = ThresholdFree.exact,
    batch_size: Annotated[int, typer.Option(help="Rows read per batch.")] = 65536,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Write the report JSON here.")] = None,
    per_class: Annotated[bool, typer.Option("--per-class/--no-per-class", help="Print the per-class table.")] = True,
) -> None:
    """Evaluate existing predictions (or a model) with the same report as `evalkit run`."""
    with user_errors():
        from evalkit.api import evaluate_predictions
        from evalkit.report import render

        if predictions is None:
            raise EvalkitError("evaluate: give --predictions FILE")
        report = evaluate_predictions(predictions, threshold=threshold, beta=beta,
                                      threshold_free=threshold_free.value, batch_size=batch_size)
        if output:
            report.write_json(output)
        console = _console()
        render(report, console, per_class=per_class, title="Predictions")
        if output:
            console.print(f"Report written to {output}")


def main() -> None:
    """Console-script entry point (handles ``--debug`` anywhere on the line)."""
    global DEBUG
    if "--debug" in sys.argv[1:]:
        DEBUG = True
        sys.argv = [a for a in sys.argv if a != "--debug"]
    app()


if __name__ == "__main__":
    main()
