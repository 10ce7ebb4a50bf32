"""The MedMNIST ``.npz`` layout (Yang et al., "MedMNIST v2", Scientific Data 2023), read as its given splits.

Arrays: ``train_images``, ``val_images``, ``test_images`` (uint8, ``(N, H, W)`` grayscale or
``(N, H, W, 3)`` RGB; H = W = 28, 64, 128 or 224) and ``train_labels``, ``val_labels``,
``test_labels`` (``(N, C)`` 0/1 for the multi-label sets such as ChestMNIST: 14 ChestX-ray14
findings). Optional ``labels``: ``(C,)`` label names; ChestMNIST files (``chestmnist*.npz``) get
the 14 finding names, others ``label_0 ..``.

The images are held in memory as float32 pixels in [0, 1] ``(N, 1 or 3, H, W)`` (ChestMNIST at 28 px:
112,120 images, 0.35 GB); an archive above the allocation limit is refused. The given validation
rows are kept as the validation split (``meta["val_rows"]``) unless cross-fitting refolds train +
validation.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from evalkit.errors import InputError

SPLITS = ("train", "val", "test")
#: ChestMNIST's 14 labels, in the order of its label columns (MedMNIST's INFO["chestmnist"]["label"])
CHESTMNIST_LABELS = ("atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule", "pneumonia",
                     "pneumothorax", "consolidation", "edema", "emphysema", "fibrosis", "pleural", "hernia")


def is_medmnist(path) -> bool:
    """Whether ``path`` is a zip archive holding ``train_images.npy`` (the MedMNIST layout)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return "train_images.npy" in zf.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def read_medmnist(path) -> tuple:
    """``(train, test)`` :class:`~evalkit.data.core.Dataset` pair from a MedMNIST archive: ``train``
    holds the train rows then the given validation rows (``meta["val_rows"]``: their indices), ``X``
    float32 ``(N, c, H, W)`` in [0, 1], ``Y`` uint8 ``(N, C)``.

    Raises:
        InputError: (exit 2, naming the file and the array) a missing array; images not uint8
            ``(N, H, W[, 3])``; labels not ``(N, C)`` 0/1 (a multi-class set such as PathMNIST is
            not multi-label); sizes that disagree; an archive above the allocation limit.
    """
    from evalkit.data.common import check_alloc, dataset_name
    from evalkit.data.core import Dataset

    path = Path(path)
    with np.load(path, allow_pickle=False) as z:
        missing = [f"{s}_{k}" for s in SPLITS for k in ("images", "labels") if f"{s}_{k}" not in z.files]
        if missing:
            raise InputError(f"{path}: MedMNIST archive without {', '.join(missing)}")
        shapes = [z[f"{s}_images"].shape for s in SPLITS]
        check_alloc(path, "images (float32)", (sum(s[0] for s in shapes), *shapes[0][1:]), 4)
        parts = {s: (_images(path, s, z[f"{s}_images"]), _labels(path, s, z[f"{s}_labels"])) for s in SPLITS}
    for s, (X, Y) in parts.items():  # named by their arrays (a Dataset would say "feature rows" / "zero samples")
        if len(X) != len(Y) or len(X) == 0:
            raise InputError(f"{path}: {s}_images has {len(X)} images but {s}_labels has {len(Y)} rows; expected "
                             "the same N, at least 1")
        names = [str(n) for n in z["labels"]] if "labels" in z.files else None
    C = parts["train"][1].shape[1]
    if any(p[1].shape[1] != C or p[0].shape[1:] != parts["train"][0].shape[1:] for p in parts.values()):
        raise InputError(f"{path}: the splits' image sizes or label counts differ")
    if names is None:
        names = list(CHESTMNIST_LABELS) if path.name.startswith("chestmnist") and C == 14 else [f"label_{j}" for j in range(C)]
    n_train = len(parts["train"][0])
    X = np.concatenate([parts["train"][0], parts["val"][0]])
    Y = np.concatenate([parts["train"][1], parts["val"][1]])
    meta = {"format": "medmnist", "val_rows": np.arange(n_train, len(X)), "notes": []}
    name = dataset_name(path)
    train = Dataset(name, X, Y, [], names, source=str(path), meta=meta)
    test = Dataset(name, *parts["test"], [], names, source=str(path), meta={"format": "medmnist", "notes": []})
    return train, test


def _images(path: Path, split: str, a: np.ndarray) -> np.ndarray:
    if a.dtype != np.uint8 or a.ndim not in (3, 4) or (a.ndim == 4 and a.shape[-1] != 3):
        raise InputError(f"{path}: {split}_images must be uint8 (N, H, W) or (N, H, W, 3), got {a.dtype} {a.shape}")
    X = a[:, None] if a.ndim == 3 else a.transpose(0, 3, 1, 2)
    return X.astype(np.float32) / np.float32(255.0)


def _labels(path: Path, split: str, a: np.ndarray) -> np.ndarray:
    if a.ndim != 2 or not np.isin(a, (0, 1)).all():
        raise InputError(f"{path}: {split}_labels must be 0/1 (N, C) multi-label targets, got {a.dtype} {a.shape} "
                         f"with values {np.unique(a)[:5].tolist()} (a multi-class MedMNIST set is not multi-label)")
    return a.astype(np.uint8)
