"""Built-in datasets shipped by installed packages (no download at run time)."""

from __future__ import annotations

import numpy as np

from evalkit.data.core import Dataset
from evalkit.errors import InputError

#: name -> one-line description, shown by ``evalkit datasets``.
BUILTINS: dict[str, str] = {
    "yeast": "MULAN yeast (Elisseeff & Weston 2001): 2417 genes, 103 features, 14 labels; "
    "standard split 1500 train / 917 test; shipped in the `river` package",
}

YEAST_N_TEST = 917  # the MULAN union file lists the 917 test rows first, then the 1500 train rows


def load_builtin(name: str) -> tuple[Dataset, Dataset]:
    """Load a built-in dataset as its standard ``(train, test)`` pair.

    Raises:
        InputError: unknown name.
    """
    if name == "yeast":
        return _yeast()
    raise InputError(f"unknown built-in dataset {name!r}; expected one of: {', '.join(BUILTINS)}")


def _yeast() -> tuple[Dataset, Dataset]:
    import pandas as pd
    from river import datasets

    path = datasets.Yeast().path
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
