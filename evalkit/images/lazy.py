"""Image-table features that stay on disk: :class:`LazyImages` is the ``X`` of a
:class:`~evalkit.data.core.Dataset` read from an image table (``--dataset labels.csv --image-root DIR``).

It holds the image paths and their table rows, never pixels: shape ``(N, c, S, S)`` (``c`` = 1 for
grayscale, 3 for RGB, from the first image; ``S`` = ``--image-size``, default the first image's shorter
side, at most :data:`DEFAULT_MAX_SIDE`). Splitting and subsetting index the paths; training and
scoring stream it batch by batch through :mod:`evalkit.images.loader` (:mod:`evalkit.images.stream`),
so memory holds the batches in flight only. How it is loaded (``--workers``, ``--augment``,
``--skip-bad-images``) travels with it in :class:`Loading`. No torch import here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from evalkit.errors import InputError, field_name

#: the default side of streamed images: the first image's shorter side, at most this (``--image-size`` to change)
DEFAULT_MAX_SIDE = 224
#: reader options only image tables take
IMAGE_OPTIONS = ("image_column", "image_root", "empty_label")
#: Pillow modes of grayscale images (streamed with one channel; every other mode with three)
MODES_GRAY = ("1", "L", "LA", "I;16", "I;16L", "I;16B", "I", "F")


@dataclass
class Loading:
    """How images are streamed: DataLoader ``workers`` (None: :func:`~evalkit.images.loader.default_workers`),
    training ``augment`` (``standard`` / ``none``), ``skip_bad`` images; ``bad``: the paths of the
    images skipped so far (one set shared by every subset of a table, so a run counts them once)."""

    workers: int | None = None
    augment: str = "standard"
    skip_bad: bool = False
    bad: set = field(default_factory=set)


@dataclass(frozen=True, eq=False)
class LazyImages:
    """``N`` images on disk as an ``(N, c, S, S)`` float32 array that is never materialised.

    Attributes:
        paths: absolute image paths ``(N,)`` (inside the table's ``--image-root``).
        rows: 1-based table rows, int64 ``(N,)`` (what bad-image messages name).
        channels / size: ``c`` and ``S``.
        loading: :class:`Loading` (shared by subsets).
    """

    paths: tuple
    rows: np.ndarray
    channels: int
    size: int
    loading: Loading = field(default_factory=Loading)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), self.channels, self.size, self.size)

    ndim = 4
    dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index) -> "LazyImages":
        """The rows ``index`` (a slice, an int array or a boolean mask), still on disk."""
        if isinstance(index, slice):
            return replace(self, paths=self.paths[index], rows=self.rows[index])
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return replace(self, paths=tuple(self.paths[i] for i in index), rows=self.rows[index])

    def resized(self, size: int) -> "LazyImages":
        """The same images streamed at side ``size``."""
        return replace(self, size=int(size))

    def with_loading(self, loading: Loading) -> "LazyImages":
        return replace(self, loading=loading)

    @staticmethod
    def concat(parts) -> "LazyImages":
        """Row-stack image sets of the same shape (train + validation for cross-fitting)."""
        first = parts[0]
        return replace(first, paths=tuple(p for part in parts for p in part.paths),
                       rows=np.concatenate([part.rows for part in parts]))

    def load(self) -> np.ndarray:
        """All these images decoded, ``(N, c, S, S)`` float32 in [0, 1] (evaluation transform): for a
        few rows only (a model's input example, the sample grid)."""
        from evalkit.images.loader import image_loader

        batches = [X.numpy() for X, _, _ in image_loader(RowsView(self), size=self.size, channels=self.channels,
                                                          train=False, batch_size=max(1, len(self)), workers=0)]
        return np.concatenate(batches) if batches else np.zeros((0, *self.shape[1:]), np.float32)

    def digest_parts(self) -> list:
        """What a content digest hashes: the shape and the paths (the pixels are not read)."""
        return [f"images{self.shape}", list(self.paths)]


@dataclass(frozen=True)
class RowsView:
    """The ``(paths, rows, Y)`` view of ``images`` that :class:`~evalkit.images.loader.ImageRows` reads
    (``Y`` ``(N, C)``; None: one zero label column, for scoring)."""

    images: LazyImages
    labels: np.ndarray | None = None

    @property
    def paths(self):
        return self.images.paths

    @property
    def rows(self):
        return self.images.rows

    @property
    def Y(self):
        return self.labels if self.labels is not None else np.zeros((len(self.images), 1), dtype=np.uint8)


def is_lazy(X) -> bool:
    """Whether ``X`` is a :class:`LazyImages` (image-table features on disk)."""
    return isinstance(X, LazyImages)


def is_image_table(path, reader_options: dict) -> bool:
    """Whether ``path`` is read as an image table: an image option is given (``--image-column``,
    ``--image-root``, ``--empty-label``), or a CSV / TSV / Parquet file has a ``path`` column whose first
    cell names an image file (:data:`~evalkit.images.tables.IMAGE_SUFFIXES`)."""
    from evalkit.images.tables import IMAGE_SUFFIXES

    if any(reader_options.get(k) is not None for k in IMAGE_OPTIONS):
        return True
    p = Path(path)
    if not p.is_file() or not p.name.lower().endswith((".csv", ".csv.gz", ".tsv", ".parquet", ".pq")):
        return False
    try:
        import pandas as pd

        head = (pd.read_parquet(p).head(1) if p.suffix in (".parquet", ".pq")
                else pd.read_csv(p, nrows=1, dtype=str, sep="\t" if ".tsv" in p.suffixes else ","))
    except Exception:  # the table reader says what is wrong with the file
        return False
    return "path" in head.columns and len(head) > 0 and str(head["path"].iloc[0]).lower().endswith(IMAGE_SUFFIXES)


def read_image_dataset(path, **reader_options):
    """An image table as a :class:`~evalkit.data.core.Dataset` whose ``X`` is :class:`LazyImages`
    (:func:`~evalkit.images.tables.read_image_table` reads the table; only the first image's header
    is opened, for its channels and side).

    Raises:
        InputError: as :func:`~evalkit.images.tables.read_image_table`; the first image missing or
            unreadable (one line naming the file and row); a reader option images do not take.
    """
    from evalkit.data.common import dataset_name
    from evalkit.data.core import Dataset
    from evalkit.images.tables import read_image_table

    unknown = sorted(set(reader_options) - {"label_columns", "label_prefix", "label_list_column", "label_sep",
                                             *IMAGE_OPTIONS} - {k for k, v in reader_options.items() if v is None})
    if unknown:
        raise InputError(f"{path}: option {unknown[0]} does not apply to image tables")
    options = {k: v for k, v in reader_options.items() if v is not None}
    table = read_image_table(path, **options)
    channels, side = _first_image(table.paths[0], int(table.rows[0]))
    X = LazyImages(tuple(table.paths), table.rows, channels, min(side, DEFAULT_MAX_SIDE))
    meta = dict(table.meta, notes=[], image_root=str(table.root), native_side=side)
    return Dataset(dataset_name(Path(path)), X, table.Y, [], table.label_names, source=str(path), meta=meta)


def _first_image(path: str, row: int) -> tuple[int, int]:
    """``(channels, shorter side)`` of the image at ``path`` from its header (1: grayscale, 3: colour)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return (1 if img.mode in MODES_GRAY else 3), int(min(img.size))
    except FileNotFoundError:
        raise InputError(f"{path}: row {row}: image file not found") from None
    except (UnidentifiedImageError, OSError) as e:
        raise InputError(f"{path}: row {row}: unreadable image ({str(e).splitlines()[0]})") from None


def configure_images(datasets: list, *, size: int | None = None, channels: int | None = None,
                     workers: int | None = None, augment: str = "standard", skip_bad: bool = False) -> list:
    """``datasets`` (Datasets of an image table, or None) streamed alike: at side ``size`` (default the
    first one's), with ``channels`` (default the first one's), one shared :class:`Loading` (so the
    skipped rows of every split are counted together); other datasets are returned unchanged.

    Raises:
        InputError: ``--workers``, ``--augment none`` or ``--skip-bad-images`` for data that is not an
            image table (they would be ignored); an image in two of the tables (e.g. ``--dataset`` and
            ``--test-dataset``: a test image seen in training).
    """
    lazy = [d for d in datasets if d is not None and is_lazy(d.X)]
    _check_disjoint(lazy)
    if not lazy:
        given = [flag for flag, on in (("--workers", workers is not None), ("--augment", augment != "standard"),
                                       ("--skip-bad-images", skip_bad)) if on]
        if given and datasets and datasets[0] is not None:
            raise InputError(f"{given[0]}: applies to image tables (a CSV / Parquet of image paths), not to "
                             f"{datasets[0].source or datasets[0].name}; drop it")
        return list(datasets)
    size = int(size or lazy[0].X.size)
    channels = int(channels or lazy[0].X.channels)
    loading = Loading(workers, augment, skip_bad)
    return [d.with_features(replace(d.X, size=size, channels=channels, loading=loading))
            if d is not None and is_lazy(d.X) else d for d in datasets]


def _check_disjoint(datasets: list) -> None:
    """Refuse an image that two of these image datasets share (the first one found, with its rows)."""
    seen: dict[str, tuple] = {}  # each table's paths are distinct already (tables._check_unique)
    for d in datasets:
        for p, row in zip(d.X.paths, d.X.rows):
            if p in seen:
                other, other_row = seen[p]
                raise InputError(f"{d.source}: row {row}: image {p} is also row {other_row} of {other.source}; "
                                 "expected test images the training never saw")
        seen.update((p, (d, row)) for p, row in zip(d.X.paths, d.X.rows))


def skipped_rows(*datasets) -> int:
    """How many image rows were skipped as bad (``--skip-bad-images``) in these datasets' streams."""
    seen = {id(d.X.loading): d.X.loading.bad for d in datasets if d is not None and is_lazy(d.X)}
    return len(set().union(*seen.values())) if seen else 0


def readable(probabilities: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(probabilities, Y)`` without the rows scored NaN: images skipped by ``--skip-bad-images``."""
    keep = np.isfinite(probabilities).all(axis=1)
    return (probabilities, Y) if keep.all() else (probabilities[keep], Y[keep])


def readable_test(probabilities: np.ndarray, splits):
    """``(probabilities, splits)`` without the test rows whose images were skipped (NaN scores)."""
    keep = np.isfinite(probabilities).all(axis=1)
    if keep.all():
        return probabilities, splits
    from evalkit.data.core import Splits

    test = splits.test.subset(np.flatnonzero(keep))
    return probabilities[keep], Splits(splits.train, splits.val, test, splits.digest, splits.name)


def check_output_not_image(output, *datasets) -> None:
    """Refuse a report path (``-o``) that names an image of these datasets' image tables: an input
    file, never overwritten, even with ``--force`` (the output checks before the data is read see the
    table, not the images it lists).

    Raises:
        InputError: (exit 2) naming the output, the table and the image's row.
    """
    if not output:
        return
    import os

    target = os.path.realpath(output)
    for d in datasets:
        if d is not None and is_lazy(d.X) and target in d.X.paths:
            row = int(d.X.rows[d.X.paths.index(target)])
            raise InputError(f"{field_name('output')} {output}: is the image of row {row} of {d.source or d.name}; "
                             "write the output to another path (an input is never overwritten, even with --force)")


def image_record(X, config) -> dict:
    """The ``image`` block of ``preprocess.json`` for streamed images ``X`` (``{}`` for other data):
    what ``evaluate --model`` streams new images with, exactly as in training."""
    if not is_lazy(X):
        return {}
    from evalkit.images.backbones import BACKBONES

    imagenet = config.model in BACKBONES and bool(config.pretrained or config.weights)
    return {"image": {"size": X.size, "channels": X.channels, "resize": "shorter side to size, centre crop",
                      "pixels": "[0, 1]: 8-bit / 255, 16-bit / 65535",
                      "normalisation": "ImageNet mean / std, inside the model" if imagenet else "none",
                      "augment": config.augment}}


def record_images(datasets: list, record: dict | None, *, workers=None, skip_bad: bool = False) -> list:
    """``datasets`` (an image table's, for ``evaluate --model``) streamed as the model's training
    streamed them: the side and channels of the record's ``image`` block (or its ``input_shape``)."""
    image = (record or {}).get("image") or {}
    shape = (record or {}).get("input_shape") or []
    size = image.get("size") or (shape[-1] if len(shape) == 3 else None)
    channels = image.get("channels") or (shape[0] if len(shape) == 3 else None)
    return configure_images(datasets, size=size, channels=channels, workers=workers, skip_bad=skip_bad)


def recorded_options(options: dict) -> dict:
    """The reader options of a run's image table that apply to another table of the same kind (how
    its labels and image paths are read): all but ``image_root`` (the new table's own folder)."""
    return {k: v for k, v in options.items() if k != "image_root"}
