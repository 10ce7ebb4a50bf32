"""``evalkit datasets``: list what ``--dataset`` accepts, and ``evalkit datasets download`` MULAN files."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from evalkit.cli.app import Command, Group
from evalkit.config import DATASETS_DIR, MULAN_MIRROR, RunConfig

datasets_app = typer.Typer(cls=Group, help="The datasets --dataset accepts; `evalkit datasets download NAME...` fetches MULAN "
                           "benchmark datasets.", invoke_without_command=True)


@datasets_app.callback(invoke_without_command=True)
def datasets(ctx: typer.Context) -> None:
    """List the built-in datasets, the data file formats `--dataset FILE` accepts and the reader options."""
    if ctx.invoked_subcommand is not None:
        return
    from evalkit.cli.app import console

    from rich.table import Table

    from evalkit.cli.options import READER_FLAGS
    from evalkit.data.builtin import BUILTINS
    from evalkit.data.readers import FORMATS

    out = console()
    t = Table(title="Built-in datasets (--dataset NAME)", title_justify="left")
    t.add_column("name")
    t.add_column("description")
    for name, text in BUILTINS.items():
        t.add_row(name, text)
    out.print(t)
    f = Table(title="File formats (--dataset FILE [--test-dataset FILE])", title_justify="left", show_lines=True)
    f.add_column("extension")
    f.add_column("what it holds")
    for ext, text in FORMATS.items():
        f.add_row(ext, text)
    out.print(f)
    o = Table(title="Reader options (evalkit run / evaluate)", title_justify="left")
    o.add_column("option")
    o.add_column("meaning")
    for name, (_, help_) in READER_FLAGS.items():
        o.add_row("--" + name.replace("_", "-"), help_)
    out.print(o)
    out.print("Without --test-dataset and without a standard split, --test-size (default "
              f"{RunConfig.model_fields['test_size'].default}) of the data is held out by a seeded stratified split.")




@datasets_app.command("download", cls=Command)
def download(
    names: Annotated[list[str], typer.Argument(help="Dataset names: emotions, scene, medical (MULAN); chestmnist "
                                                   "(MedMNIST).")],
    dir: Annotated[str, typer.Option("--dir", help="Destination folder (one sub-folder per dataset).")] = DATASETS_DIR,
    mirror: Annotated[Optional[str], typer.Option(help="Base URL laid out as <mirror>/<name>/<file> (MedMNIST: "
                                                  "<mirror>/<file>); file:// for a local copy. Default: MULAN's "
                                                  f"repository ({MULAN_MIRROR}), MedMNIST's Zenodo record.")] = None,
    size: Annotated[int, typer.Option(help="MedMNIST: image side, 28, 64, 128 or 224 px.")] = 28,
    timeout: Annotated[float, typer.Option(help="Seconds allowed for the whole download (not per read).")] = 60.0,
) -> None:
    """Download MULAN datasets (train / test ARFF and the label XML), each file checked against its
    SHA-256, or a MedMNIST archive (chestmnist), checked against the MD5 MedMNIST publishes (it publishes
    no SHA-256); a verified copy already there is kept. Exit 3 when the mirror fails, a file's size or
    checksum differs or --timeout passes; exit 2 when a destination is a FIFO, device or other special file."""
    from evalkit.cli.app import _terminate_on_sigterm, console, user_errors

    with user_errors():
        from evalkit.cli.outputs import results_kept

        results_kept()  # files / the tracking store: a full stdout only warns
        from evalkit.data.download import check_request, download as fetch

        check_request(list(names), mirror=mirror, size=size, timeout=timeout)  # before a progress bar is drawn
        _terminate_on_sigterm()  # SIGTERM raises in the main thread, so the .part file is removed (exit 143)
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        out = console()
        with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=out) as bar:
            tasks: dict[str, int] = {}

            def progress(name: str, done: int, total: int | None) -> None:
                if name not in tasks:
                    tasks[name] = bar.add_task(name, total=total)
                bar.update(tasks[name], completed=done, total=total)

            paths = fetch(list(names), dir, mirror=mirror, timeout=timeout, progress=progress, size=size)
        from evalkit.data.download import MEDMNIST

        check = "SHA-256" + ("; MedMNIST: its published MD5" if any(n in MEDMNIST for n in names) else "")
        out.print(f"{len(paths)} file(s) verified ({check}) in {dir}", markup=False)
        for name in dict.fromkeys(names):
            if name in MEDMNIST:
                out.print(f"  evalkit run --dataset {dir}/{name}/{MEDMNIST[name][size].name} --model resnet18 "
                          f"--image-size {max(size, 32)}", markup=False)
                continue
            out.print(f"  evalkit run --dataset {dir}/{name}/{name}-train.arff --test-dataset {dir}/{name}/{name}-test.arff",
                      markup=False)
