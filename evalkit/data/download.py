"""``evalkit datasets download``: MULAN benchmark datasets (ARFF + label XML) with SHA-256 checks.

The files come from the public MULAN repository (Tsoumakas et al., "MULAN: A Java Library for
Multi-Label Learning", JMLR 12, 2011), laid out as ``<mirror>/<name>/<file>``. ``--mirror`` takes any
URL with that layout, ``file://`` included (a local copy, or a machine without internet access).
Every file is checked against the SHA-256 recorded here before it is kept, written atomically (a
temporary file renamed into place), and skipped when a verified copy is already there.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evalkit.config import DATASETS_DIR as DEFAULT_DIR
from evalkit.config import MULAN_MIRROR as DEFAULT_MIRROR
from evalkit.errors import InfraError, InputError


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: its name and SHA-256 (hex)."""

    name: str
    sha256: str


#: name -> files (train / test split, label XML, and the union file where MULAN ships one)
CATALOG: dict[str, tuple[RemoteFile, ...]] = {
    "emotions": (
        RemoteFile("emotions-train.arff", "bbe704106c79bb8fb99c1d1d2e9bde081d6a2daeb01f100862f11fd91a3c1f98"),
        RemoteFile("emotions-test.arff", "f13d4b746b7b5c8eb484bd751d6ac463d4560dff998a93516a5c1fe35daf6c8f"),
        RemoteFile("emotions.xml", "dbce8e6ccbbb2fcbfd9e9edbb230d7ed12692c6e13f59fdbc0161fa9b6cf2dc0"),
    ),
    "scene": (
        RemoteFile("scene-train.arff", "b53ba93bdf412de922e3960389bcee24744fa3e872ce610511fc1d750888b64d"),
        RemoteFile("scene-test.arff", "ea38d20296b3ff7e220f477a3b802a9bcb2d768881fe6ee163efbc97ea527a42"),
        RemoteFile("scene.xml", "55d8b247b949ad5c52e5a73d8c6775ec6e5469ce9682465b45b333b68ee4bcc5"),
    ),
    "medical": (
        RemoteFile("medical-train.arff", "c764f45756ab1c553b8b4eaaf5605a5610a43bbbcf37492d0f1a12bf9c9e2244"),
        RemoteFile("medical-test.arff", "6be472e75a6c0b0916187f343a398011b1b26f8f0ddc682c575312ad3532f6c4"),
        RemoteFile("medical.xml", "51fa9d5c09e48caff3f0a0c75db1c9aa85944f8e35451f3ad8bd56fc422286ce"),
    ),
}

#: ``progress(file name, bytes so far, total bytes or None)``
Progress = Callable[[str, int, "int | None"], None]
_CHUNK = 1 << 16


def sha256_of(path: Path) -> str:
    """SHA-256 (hex) of a file, read in 64 KiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def download(names: list[str], directory: str | os.PathLike = DEFAULT_DIR, *, mirror: str = DEFAULT_MIRROR,
             timeout: float = 60.0, progress: Progress | None = None) -> list[Path]:
    """Fetch datasets into ``directory/<name>/`` and verify every file's SHA-256.

    Args:
        names: dataset names of :data:`CATALOG`.
        directory: the destination folder (created). mirror: base URL (``https://...`` or ``file://...``).
        timeout: seconds to wait for each connection and read.
        progress: called as bytes arrive (the CLI draws a progress bar from it).
    Returns:
        The paths of the verified files (already present ones included).
    Raises:
        InputError: an unknown dataset name or a malformed mirror URL (exit 2).
        InfraError: the mirror cannot be reached, a file is missing there, a checksum does not match
            (the bad download is deleted), or the destination is not writable (exit 3).
    """
    unknown = [n for n in names if n not in CATALOG]
    if unknown or not names:
        raise InputError(f"datasets download: unknown dataset(s) {', '.join(unknown) or '(none given)'}; "
                         f"expected some of: {', '.join(CATALOG)}")
    if not mirror.startswith(("https://", "http://", "file://")):
        raise InputError(f"--mirror: {mirror!r} is not a URL; expected https://... or file:///path")
    out: list[Path] = []
    for name in dict.fromkeys(names):
        folder = Path(directory) / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InfraError(f"{folder}: cannot create the folder ({e.strerror or e})") from None
        for remote in CATALOG[name]:
            out.append(_fetch(f"{mirror.rstrip('/')}/{name}/{remote.name}", folder / remote.name, remote.sha256,
                              timeout, progress))
    return out


def _fetch(url: str, target: Path, sha256: str, timeout: float, progress: Progress | None) -> Path:
    """One file: skip a verified copy, else download to a temporary file, verify, rename."""
    import urllib.error
    import urllib.request

    if target.is_file() and sha256_of(target) == sha256:
        if progress:
            size = target.stat().st_size
            progress(target.name, size, size)
        return target
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (http/file only)
            total = resp.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            done = 0
            for block in iter(lambda: resp.read(_CHUNK), b""):
                f.write(block)
                h.update(block)
                done += len(block)
                if progress:
                    progress(target.name, done, total)
        if h.hexdigest() != sha256:
            raise InfraError(f"{url}: SHA-256 mismatch (got {h.hexdigest()[:16]}..., expected {sha256[:16]}...); "
                             "the download was discarded")
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
        return target
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or e
        raise InfraError(f"{url}: cannot download ({reason})") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def _umask() -> int:
    """The process umask, read without changing it (from /proc where available, else 0o022)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022
