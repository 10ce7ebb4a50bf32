"""Images/s of evalkit's streaming image path against a plain torchvision + DataLoader loop.

Both sides do the same work on the same PNG files (RGB, ``--size`` px): decode with Pillow in
``--workers`` DataLoader workers, training-time random resized crop + flip (evaluation: resize +
centre crop), resnet18 forward (+ backward and an AdamW step when training), ``--batch`` images a
batch. evalkit's side is what ``evalkit run`` / ``evaluate`` run on an image table: the table read by
:func:`evalkit.data.load.read_file` (:class:`~evalkit.images.lazy.LazyImages`), training batches from
:func:`evalkit.images.stream.stream_loader`, evaluation through :func:`evalkit.model_io.predict` (the
one inference loop), the model from :func:`evalkit.images.backbones.build_backbone`; the
plain side is a hand-written ``Dataset`` over the file list with ``torchvision.transforms.v2`` and
``torchvision.models.resnet18``. Peak RSS (``ru_maxrss``) is printed after each phase: with
``--eval-images 20000`` it shows what evaluating a 20,000-PNG table costs in memory (the images are
streamed, so it should stay far below 1.5 GB)::

    python benchmarks/bench_images.py                       # 256 images at 64 px, CPU
    python benchmarks/bench_images.py --images 1024 --device cuda
    python benchmarks/bench_images.py --eval-images 20000   # + the 20,000-PNG evaluation's peak RSS
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from evalkit.torch_compat import declare_torchvision_ops

# the plain loop's spawned workers import this module, then unpickle torchvision transforms: CPU torch beside
# a CUDA torchvision needs its ops declared first (as evalkit.images.loader does for its own workers)
declare_torchvision_ops()


def make_table(folder: Path, n: int, size: int, seed: int = 0) -> Path:
    """``n`` random RGB PNGs of ``size`` px and a ``table.csv`` (path + 3 labels) in ``folder``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    lines = ["path,a,b,c"]
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        lines.append(f"{i}.png," + ",".join(str(int(v)) for v in rng.random(3) < 0.4))
    (folder / "table.csv").write_text("\n".join(lines) + "\n")
    return folder / "table.csv"


class PlainFiles:
    """The plain loop's ``Dataset``, written as a user would: Pillow, then transforms.v2."""

    def __init__(self, paths, Y, tf):
        self.paths, self.Y, self.tf = paths, Y, tf

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        import torch
        from PIL import Image

        with Image.open(self.paths[i]) as img:
            return self.tf(img.convert("RGB")), torch.from_numpy(self.Y[i].astype(np.float32))


def plain_loader(paths, Y, size, train, batch, workers):
    """The plain torchvision + DataLoader loop's loader."""
    import torch
    from torchvision.transforms import v2

    tf = (v2.Compose([v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True), v2.RandomResizedCrop(size, scale=(0.6, 1.0)),
                      v2.RandomHorizontalFlip()]) if train else
          v2.Compose([v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True), v2.Resize(size), v2.CenterCrop(size)]))
    return torch.utils.data.DataLoader(PlainFiles(paths, Y, tf), batch_size=batch, shuffle=train, num_workers=workers,
                                       multiprocessing_context="spawn" if workers else None)


def timed(model, loader, train: bool, device: str, evalkit_batches: bool) -> float:
    """Images/s of one pass over ``loader`` (one step per batch when ``train``)."""
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=1e-3) if train else None
    loss_fn = torch.nn.BCEWithLogitsLoss()
    with torch.inference_mode():  # warm-up outside the timing: one-time kernel and allocator set-up
        model.eval()(torch.rand(2, 3, 32, 32, device=device))
    model.train(train)
    seen, start = 0, time.perf_counter()
    for batch in loader:
        X, Y = batch[0].to(device), batch[1].to(device)
        if train:
            opt.zero_grad(set_to_none=True)
            loss_fn(model(X), Y).backward()
            opt.step()
        else:
            with torch.inference_mode():
                model(X)
        seen += len(X)
    return seen / (time.perf_counter() - start)


def predicted(model, X, batch: int, device: str) -> float:
    """Images/s of :func:`evalkit.model_io.predict` over the image table ``X`` (what ``evaluate --model`` runs)."""
    import torch

    from evalkit.model_io import predict

    with torch.inference_mode():  # the same warm-up as the plain side
        model.eval()(torch.rand(2, 3, 32, 32, device=device))
    start = time.perf_counter()
    n = len(predict(model, X, device=device, batch_size=batch))
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--eval-images", type=int, default=0, help="also evaluate a table of this many PNGs (peak RSS)")
    args = ap.parse_args()
    import torch

    from evalkit.data.load import read_file
    from evalkit.images.backbones import build_backbone, import_torchvision
    from evalkit.images.lazy import configure_images
    from evalkit.images.stream import stream_loader

    tv = import_torchvision()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        table = read_file(str(make_table(Path(tmp), args.images, args.size)), label_columns="a,b,c")
        table = configure_images([table], size=args.size, workers=args.workers)[0]
        print(f"resnet18, {args.images} PNGs of {args.size} px, batch {args.batch}, {args.workers} worker(s), {args.device}")
        for train in (True, False):
            torch.manual_seed(0)
            ours = build_backbone("resnet18", (3, args.size, args.size), 3).to(args.device)
            a = (timed(ours, stream_loader(table.X, table.Y, train=True, batch_size=args.batch), True, args.device, True)
                 if train else predicted(ours, table.X, args.batch, args.device))
            torch.manual_seed(0)
            plain = tv.models.resnet18(num_classes=3).to(args.device)
            b = timed(plain, plain_loader(list(table.X.paths), table.Y, args.size, train, args.batch, args.workers),
                      train, args.device, False)
            print(f"{'training' if train else 'evaluation':>10}: evalkit {a:7.1f} images/s   plain loop {b:7.1f} images/s   "
                  f"ratio {a / b:.3f}   peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if args.eval_images:
        with tempfile.TemporaryDirectory() as tmp:
            table = read_file(str(make_table(Path(tmp), args.eval_images, args.size)), label_columns="a,b,c")
            table = configure_images([table], size=args.size, workers=args.workers)[0]
            model = build_backbone("resnet18", (3, args.size, args.size), 3).to(args.device)
            rate = predicted(model, table.X, args.batch, args.device)
            print(f"evaluation of {args.eval_images} PNGs: {rate:.1f} images/s, peak RSS "
                  f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB (this process; workers apart)")


if __name__ == "__main__":
    main()
