"""Built-in datasets shipped inside the evalkit package (no download at run time).

``yeast.csv.gz`` is the MULAN yeast union file (Elisseeff & Weston, NIPS 2001; MULAN:
http://mulan.sourceforge.net/datasets-mlc.html) as a gzip-compressed CSV with a header row ``Att1 ..
Att103, Class1 .. Class14``: the 917 test rows first, then the 1500 train rows. It is a byte-identical
copy of the file the ``river`` package ships (``river/datasets/yeast.csv.gz``), which evalkit used to
read from there.
"""

from __future__ import annotations

import numpy as np

from evalkit.data.core import Dataset
from evalkit.errors import InputError
from evalkit.inputs import BUILTIN_DATASETS

#: name -> one-line description, shown by ``evalkit datasets`` (kept in :mod:`evalkit.inputs`, which the
#: command line checks names against before numpy loads)
BUILTINS: dict[str, str] = BUILTIN_DATASETS

YEAST_FILE = "yeast.csv.gz"
YEAST_N_TEST = 917  # the MULAN union file lists the 917 test rows first, then the 1500 train rows


def load_builtin(name: str) -> tuple[Dataset, Dataset]:
    """Load a built-in dataset as its standard ``(train, test)`` pair.

    ``"yeast"``: train ``X`` float32 ``(1500, 103)``, ``Y`` uint8 ``(1500, 14)``; test ``(917, 103)`` /
    ``(917, 14)``; ``train.meta["full_digest"]`` is the digest of all 2417 rows.
    ``"digits-grid"``: images ``(3000, 1, 16, 16)`` / ``(1000, 1, 16, 16)`` float32, ``Y`` ``(N, 10)``
    (:mod:`evalkit.images.digits_grid`).

    Raises:
        InputError: unknown name (exit code 2).
    """
    if name == "yeast":
        return _yeast()
    if name == "digits-grid":
        from evalkit.images.digits_grid import digits_grid

        return digits_grid()
    raise InputError(f"unknown built-in dataset {name!r}; expected one of: {', '.join(BUILTINS)}")


def _yeast() -> tuple[Dataset, Dataset]:
    from importlib.resources import as_file, files

    import pandas as pd

    with as_file(files("evalkit.data") / YEAST_FILE) as path:
        df = pd.read_csv(path)
    features = [c for c in df.columns if c.startswith("Att")]
    labels = [c for c in df.columns if c.startswith("Class")]
    X = df[features].to_numpy(np.float32)
    Y = df[labels].to_numpy(np.uint8)
    full = Dataset("yeast", X, Y, features, labels, source="builtin:yeast")
    test = full.subset(np.arange(YEAST_N_TEST))
    train = full.subset(np.arange(YEAST_N_TEST, full.n_samples))
    train.meta["full_digest"] = full.digest
    return train, test
