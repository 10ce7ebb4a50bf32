"""All terminal rendering of evalkit (rich): the report tables, the dataset summary, training
progress, notes and warnings, gates, grid summaries. The CLI is the only caller; workflows emit
events (:mod:`evalkit.workflows.events`) and :class:`ConsoleRenderer` turns them into output.

Text that comes from data or the user (label names, paths, messages) goes through :func:`escape`:
never read as markup, and its control characters are shown (``\\x1b``), never sent to the terminal.
"""

from __future__ import annotations

from contextlib import contextmanager

from rich.markup import escape as _markup_escape

from evalkit.cli.outputs import printable  # noqa: F401  (re-exported: the one place text is made safe)


def title_text(text):
    """A table title that is never wrapped to the table's width (a narrow table would break
    ``(threshold joint)`` over two lines): one line, data-derived text made :func:`printable`."""
    from rich.text import Text

    return Text(printable(text), no_wrap=True, overflow="ignore")


def escape(text) -> str:
    """:func:`printable` ``text`` with rich markup escaped (shown as is, never read as markup)."""
    return _markup_escape(printable(text))


class ConsoleRenderer:
    """An ``on_event`` callback that renders workflow events on a rich console (as ``evalkit`` does)."""

    def __init__(self, console, defer: tuple[str, ...] = (), *, quiet_cells: bool = False):
        """``defer``: event kinds held back until :meth:`flush` (results printed once they are saved).
        ``quiet_cells``: a grid cell prints one line as it ends (:meth:`_on_grid_cell_done`) instead of
        its dataset, training, report and per-class tables; its warnings are printed once each (the
        same text from several cells is not repeated) and its notes are left out."""
        self.console = console
        self.defer = defer
        self.quiet_cells = quiet_cells
        self._in_cell: str | bool = False  # the running cell ("cell 2/18 loss=focal seed=1") when quiet
        self._warned: set[str] = set()
        self._held: list = []
        self._progress = None
        self._task = None

    def __call__(self, event) -> None:
        if self.quiet_cells:
            event = self._quieted(event)
            if event is None:
                return
        if event.kind in self.defer:
            self._held.append(event)
            return
        handler = getattr(self, f"_on_{event.kind}", None)
        if handler is not None:
            handler(**event.data)

    def _quieted(self, event):
        """``event`` as ``quiet_cells`` renders it: None (left out) for a running grid cell's events
        but its first warning of each text, which is named after the cell."""
        if event.kind in ("grid_cell", "grid_cell_done"):
            self._in_cell = event.kind == "grid_cell" and f"cell {event.data['i']}/{event.data['n']} {event.data['label']}"
            return None if self._in_cell else event
        if not self._in_cell:
            return event
        if event.kind == "warning" and event.data["text"] not in self._warned:
            self._warned.add(event.data["text"])
            return type(event)("warning", {"text": f"{self._in_cell}: {event.data['text']}"})
        return None

    def flush(self) -> None:
        """Render the events held back (``defer``), in the order they came."""
        held, self._held, self.defer = self._held, [], ()
        for event in held:
            self(event)

    def _on_dataset(self, splits) -> None:
        render_splits(splits, self.console)

    def _on_warning(self, text: str) -> None:
        self.console.print(f"[yellow]warning:[/] {escape(text)}")

    def _on_note(self, text: str) -> None:
        self.console.print(f"note: {escape(text)}")

    def _on_fold(self, k: int, folds: int, n_train: int, n_out_of_fold: int) -> None:
        self.console.print(f"fold {k}/{folds}: {n_train} train, {n_out_of_fold} out-of-fold")

    def _on_train_start(self, epochs: int, monitor: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("[bold]train[/]"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.description}"), TimeElapsedColumn(), console=self.console)
        self._progress.start()
        self._task = self._progress.add_task("", total=epochs)

    def _on_epoch(self, row: dict, monitor: str) -> None:
        if self._progress is None:
            return
        desc = f"epoch {row['epoch']}: train loss {row['train_loss']:.4f}  val loss {row['val_loss']:.4f}"
        if "val_metric" in row:
            desc += f"  {monitor} {row['val_metric']:.4f}"
        self._progress.update(self._task, advance=1, description=desc)

    def _on_train_end(self, best_epoch: int, epochs_run: int, stopped_early: bool) -> None:
        if self._progress is not None:
            self._progress.update(self._task, total=epochs_run)
            self._progress.stop()
            self._progress = None
        self.console.print(f"best epoch {best_epoch} of {epochs_run}" + (" (early stop)" if stopped_early else ""))

    def _on_report(self, report, title: str, per_class=True) -> None:
        render_report(report, self.console, per_class=per_class, title=title)

    def _on_tracked(self, run_id: str, experiment: str, tracking_uri: str, registered_model=None) -> None:
        self.console.print(f"MLflow run [bold]{run_id}[/] in experiment '{escape(experiment)}' ({escape(tracking_uri)})")
        if registered_model:
            self.console.print(f"Registered model [bold]{escape(registered_model)}[/]")

    def _on_written(self, path: str, what: str) -> None:
        self.console.print(f"{what} written to {escape(str(path))}")

    def _on_grid_cell(self, i: int, n: int, label: str) -> None:
        self.console.rule(f"grid cell {i}/{n}: {escape(label)}")

    def _on_grid_cell_done(self, i: int, n: int, label: str, values: dict, seconds: float, run_id, report) -> None:
        self.console.print(cell_line(i, n, label, report, seconds), soft_wrap=True)

    def _on_grid_summary(self, stats: dict, title: str) -> None:
        from evalkit.cli.tables import render_groups

        render_groups(stats, self.console, title=title)

    def _on_grid_done(self, parent_run_id: str, runs: int, experiment: str) -> None:
        self.console.print(f"MLflow parent run [bold]{parent_run_id}[/] with {runs} child runs; compare them with: "
                           f"evalkit compare --experiment {escape(experiment)} --parent {parent_run_id}")

    def _on_gates(self, block: dict) -> None:
        render_gates(block, self.console)


@contextmanager
def flushed(renderer):
    """Print the renderer's held-back events when the work ends (also when it raised)."""
    try:
        yield renderer
    finally:
        renderer.flush()


def split_renderer(stdout_renderer, stderr_renderer):
    """Notes and warnings of ``evaluate`` go to stderr (stdout holds the report)."""

    def on_event(event) -> None:
        (stderr_renderer if event.kind in ("note", "warning") else stdout_renderer)(event)

    return on_event


def cell_line(i: int, n: int, label: str, report, seconds: float) -> str:
    """One grid cell as one line: ``cell 3/18 loss=focal seed=2: micro-F2 0.7012  macro-F2 0.5981
    mAP 0.4977  subset acc 0.0349  (12.3 s)`` (the reported F-beta, test split)."""
    from evalkit.report import fbeta_key

    parts = []
    if report:
        s, fk = report["summary"], fbeta_key(report.get("beta", 2.0))
        parts = [f"micro-{fk.upper()} {_fmt(s['micro'].get(fk))}", f"macro-{fk.upper()} {_fmt(s['macro'].get(fk))}",
                 f"mAP {_fmt(s.get('mean_average_precision'))}", f"subset acc {_fmt(s.get('subset_accuracy'))}"]
    return f"cell {i}/{n} {escape(label)}: " + "  ".join(parts) + f"  ({seconds:.1f} s)"


def render_splits(splits, console) -> None:
    """The dataset summary table: samples, features, labels, cardinality, density per split."""
    from rich.table import Table

    t = Table(title=title_text(f"Dataset {splits.name} (digest {splits.digest})"), title_justify="left")
    for col in ("split", "samples", "features", "labels", "cardinality", "density", "labels with no positives"):
        t.add_column(col, justify="left" if col in ("split", "labels with no positives") else "right")
    for name in ("train", "val", "test"):
        ds = getattr(splits, name)
        empty = [n for n, s in zip(ds.label_names, ds.Y.sum(axis=0)) if s == 0]
        t.add_row(name, str(ds.n_samples), str(ds.n_features), str(ds.n_labels), f"{ds.label_cardinality:.3f}",
                  f"{ds.label_density:.3f}", escape(", ".join(empty)) or "—")
    console.print(t)


def render_gates(block: dict, console) -> None:
    """One line per gate result (PASS / FAIL / SKIP / UNKNOWN) under the overall verdict; never wrapped
    by evalkit (a scheduled job's log is grepped line by line: ``grep FAIL``), a terminal wraps them."""
    from evalkit.gates import describe

    if not block["results"]:
        return
    b = block.get("baseline") or {}
    head = f"Gates: {block['status'].upper()}"
    if block["status"] == "unknown":
        head += " (a baseline could not be read)"
    if b.get("run_id"):
        head += f" (baseline run {b['run_id']})" if b["source"] == b["run_id"] else \
            f" (baseline {b['source']}: run {b['run_id']})"
    console.print(f"[bold {'red' if block['status'] == 'fail' else 'green'}]{escape(head)}[/]", soft_wrap=True)
    for r in block["results"]:
        mark = {"pass": "[green]PASS[/]", "fail": "[red]FAIL[/]", "skipped": "[yellow]SKIP[/]",
                "unknown": "[yellow]UNKNOWN[/]"}[r["status"]]
        console.print(f"  {mark} {escape(describe(r))}", soft_wrap=True)



def _fmt(v, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, int):
        return str(v)
    return f"{v:.{digits}f}"


def _with_ci(block: dict, key: str) -> str:
    """``0.627 [0.601, 0.652]`` when the report has ``<key>_ci``, else the value as :func:`_fmt` prints it."""
    ci = block.get(f"{key}_ci")
    if block.get(key) is None or not isinstance(ci, (list, tuple)):
        return _fmt(block.get(key))
    return f"{block[key]:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def interval_lines(report: dict) -> list[str]:
    """What the intervals are (level, method, resamples, rows, seed) and the flagged labels, or nothing
    when the report has no ``confidence_interval`` block."""
    ci = report.get("confidence_interval")
    if not ci:
        return []
    from evalkit.stats.bootstrap import MIN_POSITIVES

    method = ci["method"] + ("; mAP studentized" if ci.get("studentized") else "")
    lines = [f"[dim]\\[low, high]: {100 * ci['level']:g}% bootstrap intervals ({method}, {ci['resamples']} "
             f"resamples of the {report['dataset']['n_samples']} test rows, seed {ci['seed']}); --ci 0 turns them off.[/]"]
    if ci.get("why"):
        lines.append(f"[dim]{escape(ci['why'])}.[/]")
    unstable = report["summary"].get("ci_unstable_labels") or []
    if unstable:
        shown = ", ".join(escape(u) for u in unstable[:8]) + (f" (+{len(unstable) - 8} more)" if len(unstable) > 8 else "")
        lines.append(f"[yellow]{len(unstable)} label(s) have fewer than {MIN_POSITIVES} positive test rows, too few for "
                     f"a stable interval; the macro intervals lean on them: {shown}[/]")
    return lines


#: rows of the per-class table by default (``--per-class top``): the labels with the largest support
PER_CLASS_ROWS = 50


def per_class_rows(rows: list[dict], per_class: bool | str | int = "top") -> tuple[list[dict], int]:
    """The per-class rows to print and how many are left out: ``top`` (default, also ``True``) keeps
    the :data:`PER_CLASS_ROWS` labels with the largest support (in label order), ``all`` every label,
    ``none`` (also ``False``) none, a number N the N largest."""
    if per_class is False or per_class == "none":
        return [], len(rows)
    if per_class == "all":
        return rows, 0
    limit = PER_CLASS_ROWS if per_class in (True, "top") else int(per_class)
    if len(rows) <= limit:
        return rows, 0
    order = sorted(range(len(rows)), key=lambda i: (-(rows[i].get("support") or 0), i))[:limit]
    return [rows[i] for i in sorted(order)], len(rows) - limit


def render_report(report: dict, console, *, per_class: bool | str = "top", title: str = "Test split") -> None:
    """Print the summary table, the per-class table (capped: see :func:`per_class_rows`) and the
    notes that explain them (rich)."""
    from rich.table import Table

    from evalkit.report import AVERAGES, fbeta_key

    s = report["summary"]
    fk = fbeta_key(report.get("beta", 2.0))
    cols = ["accuracy", "precision", "recall", "f1"] + ([fk] if fk != "f1" else [])
    ds = report["dataset"]
    t = Table(title=title_text(f"{title}: {ds['name']} — {ds['n_samples']} samples × {ds['n_labels']} labels "
                    f"(threshold {report['threshold']['strategy']})"), title_justify="left")
    t.add_column("average")
    for c in cols:
        t.add_column(c.upper() if c.startswith("f") else c, justify="right")
    for avg in AVERAGES:
        t.add_row(avg, *(_with_ci(s[avg], c) for c in cols))
    console.print(t)
    lines = [
        f"subset accuracy (exact match) [bold]{_with_ci(s, 'subset_accuracy')}[/]   "
        f"Hamming loss [bold]{_with_ci(s, 'hamming_loss')}[/]   "
        f"mAP [bold]{_with_ci(s, 'mean_average_precision')}[/]   "
        f"macro AUROC [bold]{_with_ci(s, 'macro_auroc')}[/]",
    ]
    if s.get("label_ranking_average_precision") is not None:
        lines.append(
            f"ranking: LRAP {_with_ci(s, 'label_ranking_average_precision')}   "
            f"coverage error {_fmt(s.get('coverage_error'), 2)}   ranking loss {_fmt(s.get('label_ranking_loss'))}"
        )
    left = s.get("labels_without_positives")
    if left:
        lines.append(f"[dim]mAP averages the {ds['n_labels'] - left} labels with a positive in this split; {left} "
                     f"label(s) without one are left out (AP is undefined there). Over all labels, scoring those 0 "
                     f"as scikit-learn does: {_fmt(s.get('mean_average_precision_all_labels'))}.[/]")
    lines += interval_lines(report)
    for line in lines:
        console.print(line)
    ref = report.get("reference_at_0.5")
    shown, left_out = per_class_rows(report["per_class"], per_class)
    if shown:
        pt = Table(title=title_text("Per class" + (f" (the {len(shown)} labels with the largest support)" if left_out else "")),
                   title_justify="left")
        names = ["label", "support", "tp", "fp", "fn", "tn", "precision", "recall", "f1"]
        names += ([fk] if fk != "f1" else []) + ["accuracy", "average_precision", "auroc", "threshold"]
        for n in names:
            header = {"average_precision": "AP", "auroc": "AUROC", "threshold": "thr"}.get(n, n)
            pt.add_column(header.upper() if n.startswith("f") and n != "fp" and n != "fn" else header,
                          justify="left" if n == "label" else "right", no_wrap=n == "label")
        for row in shown:
            pt.add_row(*(escape(str(row[n])) if n == "label" else _fmt(row.get(n), 3) for n in names))
        console.print(pt)
        if left_out:
            console.print(f"[dim]{left_out} more labels are not shown: --per-class all prints every label; every "
                          "label's numbers are in the report JSON (-o) and the run's per_class.csv.[/]")
    beta = report.get("beta", 2.0)
    k = (report.get("threshold") or {}).get("k")
    rule = ("Predictions use probability >= threshold" if k is None else
            f"Predictions are each sample's {k} highest-scoring labels (no per-label cut, so no bootstrap intervals)")
    console.print(
        "[dim]Notes: 'accuracy' is label-wise accuracy = 1 − Hamming loss; it is identical for the micro, "
        "macro and samples averages and is inflated by the many true negatives. Subset accuracy is the "
        f"strict exact-match ratio. F{beta:g} weighs recall {beta * beta:g}× as much as precision "
        f"(beta={beta:g}). {rule}; undefined values (—) are left out of macro means.[/]"
    )
    if ref:
        rs = ref["summary"]
        console.print(
            f"[dim]For reference at a fixed 0.5 cut: micro-{fk.upper()} {_fmt(rs['micro'].get(fk))}, "
            f"macro-{fk.upper()} {_fmt(rs['macro'].get(fk))}, subset accuracy {_fmt(rs['subset_accuracy'])}.[/]"
        )
