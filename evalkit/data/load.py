"""Dispatch a ``--dataset`` value (built-in name or file path) to the right reader."""

from __future__ import annotations

from pathlib import Path

from evalkit.data.core import Dataset
from evalkit.errors import InputError, field_name


def load_dataset(spec: str, test_spec: str | None = None, **reader_options) -> tuple[Dataset, Dataset | None]:
    """Load ``spec`` (a built-in name such as ``"yeast"`` or a file path) and optional ``test_spec``.

    Returns ``(train, test)``; ``test`` is None when neither a test file nor a standard split exists.

    ``reader_options`` go to :func:`evalkit.data.readers.read` for every file read (``label_file``,
    ``meka_labels`` for ARFF; ``label_columns``, ``label_prefix``, ``label_list_column``, ``label_sep``
    for CSV / Parquet; ``drop_columns`` for every format); accepted formats are
    :data:`evalkit.data.readers.FORMATS`. Datasets hold ``X`` float32 ``(N, F)`` and ``Y`` uint8 ``(N, C)``.

    Raises:
        InputError: (exit code 2) unknown built-in name, missing file, unsupported format, bad file
            content.
    """
    from evalkit.data.builtin import BUILTINS, load_builtin

    if spec in BUILTINS:
        if reader_options and test_spec is None:
            raise InputError(f"{' / '.join(map(field_name, sorted(reader_options)))}: {spec} is a built-in dataset "
                             "and takes no reader options")
        train, test = load_builtin(spec)
        if test_spec is not None:
            test = read_file(test_spec, **reader_options)
        return train, test
    if spec.endswith(".npz") and Path(spec).is_file():
        from evalkit.images.medmnist import is_medmnist, read_medmnist

        if is_medmnist(spec):  # given train / val / test splits
            train, test = read_medmnist(spec)
            return train, (read_file(test_spec, **reader_options) if test_spec else test)
    train = read_file(spec, **reader_options)
    test = read_file(test_spec, **reader_options) if test_spec else None
    if test is not None and ("one_hot" in train.meta or "one_hot" in test.meta):
        from evalkit.data.tabular import align_one_hot

        test = align_one_hot(test, train.meta.get("one_hot") or {}, f"the training file {spec}")
    return train, test


def read_file(path: str, **reader_options) -> Dataset:
    """Read one data file with :func:`evalkit.data.readers.read` (``reader_options`` as there).

    Raises:
        InputError: (exit code 2) no such file (the message lists the built-in names, in case a
            built-in was meant), or anything :func:`~evalkit.data.readers.read` refuses.
    """
    from evalkit.inputs import require_dataset_file

    require_dataset_file(path)
    p = Path(path)
    from evalkit.images.lazy import is_image_table, read_image_dataset

    if is_image_table(p, reader_options):  # image paths + labels: the images stay on disk
        return read_image_dataset(p, **reader_options)
    from evalkit.data import readers

    return readers.read(p, **reader_options)
