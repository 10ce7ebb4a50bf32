"""Images decoded batch by batch: a torch ``Dataset`` over an :class:`~evalkit.images.tables.ImageTable`
and the ``DataLoader`` that streams it (imports torch: import this module lazily).

Each image is opened with Pillow when its batch is assembled (in a DataLoader worker when
``workers > 0``) and dropped with the batch: memory holds the batches in flight, never the table's
images. 8- and 16-bit grayscale and RGB (PNG, JPEG, BMP, TIFF) become float32 pixels in [0, 1].
Training batches are augmented (torchvision.transforms.v2: random resized crop, horizontal flip);
evaluation batches are resized and centre-cropped, deterministically.
"""

from __future__ import annotations

import os
import signal

import numpy as np
import torch

from evalkit.errors import InputError

from evalkit.torch_compat import declare_torchvision_ops  # noqa: E402

# a spawned DataLoader worker unpickles torchvision transforms right after importing this module
declare_torchvision_ops()

#: Pillow modes read as 8-bit (divided by 255) / 16-bit (divided by 65535) pixels
MODES_8BIT = ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr")
MODES_16BIT = ("I;16", "I;16L", "I;16B", "I")
#: the scale range of the training crop (fraction of the image area), as torchvision's default starts at 0.08
CROP_SCALE = (0.6, 1.0)


class BadImage(InputError):
    """An image that is missing, unreadable or of a mode evalkit does not read (exit 2): one line
    naming the file and the table row.

    A DataLoader worker's error reaches the main process re-raised by torch as ``BadImage("Caught
    BadImage in DataLoader worker process 0.\nOriginal Traceback ...\n...BadImage: <message>")``;
    the message is then taken back from the traceback's last line, so it stays one line whatever
    ``--workers`` is."""

    def __init__(self, message: str = "", *args, **kwargs):
        text = str(message)
        if text.startswith("Caught BadImage") and "\n" in text:
            text = text.rstrip().splitlines()[-1].split("BadImage: ", 1)[-1]
        super().__init__(text, *args, **kwargs)


def read_image(path: str, row: int, channels: int) -> np.ndarray:
    """The image at ``path`` (table row ``row``) as float32 ``(channels, H, W)`` in [0, 1]: RGB
    converted to grayscale for ``channels = 1``, grayscale repeated for ``channels = 3``.

    Raises:
        BadImage: missing file, a file Pillow cannot decode, an unsupported mode.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            arr = _pixels(img, channels)
    except FileNotFoundError:
        raise BadImage(f"{path}: row {row}: image file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise BadImage(f"{path}: row {row}: unreadable image ({str(e).splitlines()[0] or type(e).__name__})") from None
    return arr


def _pixels(img, channels: int) -> np.ndarray:
    if img.mode in MODES_16BIT:
        gray = np.clip(np.asarray(img, dtype=np.float32) / 65535.0, 0.0, 1.0)[None]
        return np.repeat(gray, 3, axis=0) if channels == 3 else gray
    if img.mode not in MODES_8BIT:
        raise ValueError(f"unsupported image mode {img.mode!r}; expected 8- or 16-bit grayscale or RGB")
    arr = np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.float32) / 255.0
    return arr[None] if channels == 1 else np.ascontiguousarray(arr.transpose(2, 0, 1))


def image_transform(size: int, train: bool, augment: str = "standard"):
    """The transform of a ``(c, H, W)`` float tensor: training with ``augment = "standard"``: random
    resized crop to ``size`` (scale :data:`CROP_SCALE`) and a horizontal flip with probability 0.5;
    otherwise (evaluation, ``augment = "none"``): resize the shorter side to ``size`` and centre-crop
    ``size`` x ``size``."""
    import importlib

    from evalkit.images.backbones import import_torchvision

    import_torchvision()
    v2 = importlib.import_module("torchvision.transforms.v2")
    if train and augment != "none":
        return v2.Compose([v2.RandomResizedCrop(size, scale=CROP_SCALE, antialias=True), v2.RandomHorizontalFlip()])
    return v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size)])


class ImageRows(torch.utils.data.Dataset):
    """Row ``i`` of ``table`` -> ``(image (channels, size, size) float32, labels (C,) float32, ok)``;
    with ``skip_bad`` a bad image gives ``ok = False`` (and zeros) instead of raising."""

    def __init__(self, table, channels: int, transform, skip_bad: bool = False, seeded: bool = False):
        self.table, self.channels, self.transform, self.skip_bad = table, channels, transform, skip_bad
        self.seeded = seeded  # a random transform (training augmentation): seeded per row

    def __len__(self) -> int:
        return len(self.table.paths)

    def __getitem__(self, item):
        """``item``: a row ``i``, or ``(key, i)`` from :class:`EpochOrder` (the row's augmentation is
        then drawn from a generator seeded by ``key`` and ``i``: the same whichever worker decodes it)."""
        key, i = item if isinstance(item, tuple) else (None, item)
        y = torch.from_numpy(self.table.Y[i].astype(np.float32))
        try:
            x = torch.from_numpy(read_image(self.table.paths[i], int(self.table.rows[i]), self.channels))
        except BadImage:
            if not self.skip_bad:
                raise
            return None, y, False
        if key is None or not self.seeded:
            return self.transform(x), y, True
        with torch.random.fork_rng(devices=[]):  # the CPU generator only (torch.manual_seed would queue CUDA's too)
            torch.default_generator.manual_seed((key * 1_000_003 + i) % (1 << 62))
            return self.transform(x), y, True


class EpochOrder(torch.utils.data.Sampler):
    """The rows of one epoch as ``(key, i)`` items: shuffled with a generator seeded from ``(seed,
    epoch)`` when ``shuffle``, in table order otherwise; ``key`` seeds each row's augmentation. An
    epoch's order and augmentation depend on ``seed`` and :meth:`set_epoch` only (not on the epochs
    before, nor on the workers), so a resumed run streams exactly what an uninterrupted one would."""

    def __init__(self, n: int, seed: int, shuffle: bool) -> None:
        self.n, self.seed, self.shuffle, self.epoch = n, int(seed), shuffle, 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def key(self) -> int:
        """The epoch's seed (also seeds the model's own randomness, e.g. dropout, in :mod:`.stream`)."""
        return (self.seed * 100_003 + self.epoch) % (1 << 62)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        key = self.key()
        order = (torch.randperm(self.n, generator=torch.Generator().manual_seed(key)).tolist() if self.shuffle
                 else range(self.n))
        return iter([(key, i) for i in order])


def collate(batch):
    """``(X (n, c, s, s), Y (n, C), kept (n_batch,) bool)``: the readable rows of ``batch`` stacked;
    ``kept`` marks which rows of the batch they are."""
    kept = torch.tensor([ok for _, _, ok in batch], dtype=torch.bool)
    X = [x for x, _, ok in batch if ok]
    Y = [y for _, y, ok in batch if ok]
    c = batch[0][1].shape[0]
    return (torch.stack(X) if X else torch.empty(0), torch.stack(Y) if Y else torch.empty(0, c), kept)


def default_workers() -> int:
    """DataLoader worker processes when ``--workers`` is not given: the available cores less one
    (the training process), at most 8; 0 (decode in the training process) on one core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(8, cores - 1))


def image_loader(table, *, size: int, channels: int, train: bool, batch_size: int, seed: int = 0,
                 workers: int | None = None, augment: str = "standard", skip_bad: bool = False):
    """A ``DataLoader`` of ``(X, Y, kept)`` batches (:func:`collate`) over ``table``: shuffled when
    ``train``, in table order otherwise (:class:`EpochOrder`: call ``loader.sampler.set_epoch(e)``
    before epoch ``e``); ``workers`` processes decode (default :func:`default_workers`); the order and
    each row's augmentation follow ``seed`` and the epoch, whatever the workers."""
    rows = ImageRows(table, channels, image_transform(size, train, augment), skip_bad, seeded=train and augment != "none")
    workers = default_workers() if workers is None else workers
    return SafePathLoader(
        rows, batch_size=batch_size, sampler=EpochOrder(len(rows), seed, shuffle=train), num_workers=workers,
        collate_fn=collate, persistent_workers=workers > 0, pin_memory=torch.cuda.is_available(),
        worker_init_fn=_worker_signals if workers else None, multiprocessing_context="spawn" if workers else None)


class SafePathLoader(torch.utils.data.DataLoader):
    """A ``DataLoader`` whose worker processes start with ``PYTHONSAFEPATH=1``: a spawned worker is
    ``python -c ...``, which would put the working folder first on ``sys.path`` and import a stray
    ``pickle.py`` or ``numpy.py`` from it before anything else (the fold pool and ``evalkit ui`` start
    their children with ``-P`` for the same reason). The variable is set only while the workers start.

    The workers also leave Ctrl-C and SIGTERM sent to the whole process group (a terminal's Ctrl-C,
    ``kill -- -PGID``, systemd stopping a service) to the training process, which ends the run
    (KILLED, exit 130 / 143) and stops them (:meth:`close`): they start with both signals blocked,
    then ignore SIGINT and exit quietly (status 0) on SIGTERM (:func:`_worker_signals`). A worker
    still importing torch printed a KeyboardInterrupt traceback, and one killed by the group's SIGTERM
    made torch raise "DataLoader worker ... is killed by signal" over the interrupt (exit 1, a
    traceback, the run FAILED).
    """

    def _get_iterator(self):
        if not self.num_workers:
            return super()._get_iterator()
        safe = not os.environ.get("PYTHONSAFEPATH")
        if safe:
            os.environ["PYTHONSAFEPATH"] = "1"
        blocked = None
        try:
            if hasattr(signal, "pthread_sigmask"):
                from multiprocessing import resource_tracker

                resource_tracker.ensure_running()  # first: starting it unblocks SIGINT and SIGTERM, whatever the mask
                blocked = signal.pthread_sigmask(signal.SIG_BLOCK, GROUP_SIGNALS)
            return super()._get_iterator()
        finally:
            if safe:
                os.environ.pop("PYTHONSAFEPATH", None)
            if blocked is not None:  # a signal that came meanwhile is delivered to this process now
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def close(self) -> None:
        """Stop this loader's worker processes now (they are persistent): on an error or an interrupt
        too, so that none is left to the interpreter's exit, where torch took a worker stopped then for
        a crash and printed a traceback."""
        iterator, self._iterator = getattr(self, "_iterator", None), None
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
            for w in getattr(iterator, "_workers", []):
                if w.is_alive():  # still starting, SIGTERM blocked: torch's terminate() could not stop it
                    w.kill()
                    w.join(5)


#: the signals a DataLoader worker leaves to the training process, blocked while it starts
GROUP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _worker_signals(worker_id: int) -> None:
    """A worker's ``worker_init_fn``: Ctrl-C ignored, SIGTERM a quiet exit (from the group, or torch
    stopping the worker), then both unblocked (they were blocked while the worker started; one that
    came meanwhile is acted on now)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0))
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, GROUP_SIGNALS)
