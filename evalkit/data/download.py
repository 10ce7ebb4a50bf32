"""``evalkit datasets download``: MULAN benchmark datasets (ARFF + label XML) with SHA-256 checks.

The files come from the public MULAN repository (Tsoumakas et al., "MULAN: A Java Library for
Multi-Label Learning", JMLR 12, 2011), laid out as ``<mirror>/<name>/<file>``. ``--mirror`` takes any
URL with that layout, ``file://`` included (a local copy, or a machine without internet access).
Every file is checked against the size and SHA-256 recorded here before it is kept (a download that
grows past the recorded size is stopped there), written atomically (a temporary ``.part`` file
renamed into place, removed on every way out), and skipped when a verified copy is already there.
``timeout`` bounds the whole download, not each read.
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evalkit.config import DATASETS_DIR as DEFAULT_DIR
from evalkit.config import MULAN_MIRROR as DEFAULT_MIRROR
from evalkit.errors import InfraError, InputError


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: its name, SHA-256 (hex) and size in bytes; a MedMNIST file: its
    published MD5 (hex) instead, size unknown (None)."""

    name: str
    sha256: str
    size: int | None
    md5: str | None = None

    @property
    def check(self) -> tuple[str, str]:
        """``(hashlib algorithm, expected hex digest)``: SHA-256, or the published MD5 when that is all there is."""
        return ("md5", self.md5) if self.md5 else ("sha256", self.sha256)


#: name -> files (train / test split, label XML, and the union file where MULAN ships one)
CATALOG: dict[str, tuple[RemoteFile, ...]] = {
    "emotions": (
        RemoteFile("emotions-train.arff", "bbe704106c79bb8fb99c1d1d2e9bde081d6a2daeb01f100862f11fd91a3c1f98", 252080),
        RemoteFile("emotions-test.arff", "f13d4b746b7b5c8eb484bd751d6ac463d4560dff998a93516a5c1fe35daf6c8f", 132007),
        RemoteFile("emotions.xml", "dbce8e6ccbbb2fcbfd9e9edbb230d7ed12692c6e13f59fdbc0161fa9b6cf2dc0", 323),
    ),
    "scene": (
        RemoteFile("scene-train.arff", "b53ba93bdf412de922e3960389bcee24744fa3e872ce610511fc1d750888b64d", 3127968),
        RemoteFile("scene-test.arff", "ea38d20296b3ff7e220f477a3b802a9bcb2d768881fe6ee163efbc97ea527a42", 3090742),
        RemoteFile("scene.xml", "55d8b247b949ad5c52e5a73d8c6775ec6e5469ce9682465b45b333b68ee4bcc5", 285),
    ),
    "medical": (
        RemoteFile("medical-train.arff", "c764f45756ab1c553b8b4eaaf5605a5610a43bbbcf37492d0f1a12bf9c9e2244", 69680),
        RemoteFile("medical-test.arff", "6be472e75a6c0b0916187f343a398011b1b26f8f0ddc682c575312ad3532f6c4", 99124),
        RemoteFile("medical.xml", "51fa9d5c09e48caff3f0a0c75db1c9aa85944f8e35451f3ad8bd56fc422286ce", 1818),
    ),
}

#: MedMNIST (Yang et al., "MedMNIST v2", Scientific Data 2023) files by side (px), from the Zenodo
#: record MedMNIST's own ``medmnist/info.py`` (INFO["chestmnist"]) downloads; MedMNIST publishes MD5
#: checksums only (no SHA-256, no sizes), so these files are checked against that MD5
MEDMNIST_MIRROR = "https://zenodo.org/records/10519652/files"
MEDMNIST: dict[str, dict[int, RemoteFile]] = {
    "chestmnist": {
        28: RemoteFile("chestmnist.npz", "", None, md5="02c8a6516a18b556561a56cbdd36c4a8"),
        64: RemoteFile("chestmnist_64.npz", "", None, md5="9de6cd0b934ebb5b7426cfba5efbae16"),
        128: RemoteFile("chestmnist_128.npz", "", None, md5="db107e5590b27930b62dbaf558aebee3"),
        224: RemoteFile("chestmnist_224.npz", "", None, md5="45bd33e6f06c3e8cdb481c74a89152aa"),
    },
}

#: ``progress(file name, bytes so far, total bytes or None)``
Progress = Callable[[str, int, "int | None"], None]
_CHUNK = 1 << 16


def sha256_of(path: Path, algorithm: str = "sha256") -> str:
    """SHA-256 (or ``algorithm``'s) hex digest of a file, read in 64 KiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def check_request(names: list[str], *, mirror: str | None = None, size: int = 28, timeout: float = 60.0) -> None:
    """The arguments of :func:`download` (the CLI checks them before it draws a progress bar).

    Raises:
        InputError: an unknown dataset name, a MedMNIST ``size`` not published, a malformed mirror
            URL, a ``timeout`` that is not a positive, finite number of seconds.
    """
    unknown = [n for n in names if n not in CATALOG and n not in MEDMNIST]
    if unknown or not names:
        raise InputError(f"datasets download: unknown dataset(s) {', '.join(unknown) or '(none given)'}; "
                         f"expected some of: {', '.join([*CATALOG, *MEDMNIST])}")
    if any(n in MEDMNIST for n in names) and size not in MEDMNIST_SIZES:
        raise InputError(f"--size {size}: MedMNIST files come in {', '.join(map(str, MEDMNIST_SIZES))} px")
    if mirror is not None and not mirror.startswith(("https://", "http://", "file://")):
        raise InputError(f"--mirror: {mirror!r} is not a URL; expected https://... or file:///path")
    if not 0 < timeout < math.inf:  # -1 would end at once as a timeout (exit 3); nan, inf: never
        raise InputError(f"--timeout: expected a positive number of seconds (got {timeout:g})")


def download(names: list[str], directory: str | os.PathLike = DEFAULT_DIR, *, mirror: str | None = None,
             timeout: float = 60.0, progress: Progress | None = None, size: int = 28) -> list[Path]:
    """Fetch datasets into ``directory/<name>/`` and verify every file's SHA-256 (MedMNIST: its published MD5).

    Args:
        names: dataset names of :data:`CATALOG` (MULAN: ``<mirror>/<name>/<file>``) or :data:`MEDMNIST`
            (``<mirror>/<file>``, the file of side ``size``: 28, 64, 128 or 224).
        directory: the destination folder (created). mirror: base URL (``https://...`` or ``file://...``;
            default: MULAN's repository, or MedMNIST's Zenodo record).
        timeout: seconds for the whole call (every connection and read), not per read.
        progress: called as bytes arrive (the CLI draws a progress bar from it).
    Returns:
        The paths of the verified files (already present ones included).
    Raises:
        InputError: an unknown dataset name, a malformed mirror URL or a ``timeout`` that is not a
            positive, finite number (exit 2).
        InfraError: the mirror cannot be reached, a file is missing there, a checksum does not match
            (the bad download is deleted), a file grows past or is declared other than its recorded size,
            the files do not all arrive within ``timeout``, or the destination is not writable (exit 3).
        InputError: also when the destination file or folder exists but is a FIFO, device or other
            special file (refused without opening it, exit 2).
    A ``.part`` file never outlives the call (error, Ctrl-C or SIGTERM raised as an exception).
    """
    check_request(names, mirror=mirror, size=size, timeout=timeout)
    out: list[Path] = []
    deadline = time.monotonic() + timeout  # one deadline for the whole call, not per file or read
    _refuse_non_regular(Path(directory), stat.S_ISDIR, "a folder")
    for name in dict.fromkeys(names):
        folder = Path(directory) / name
        _refuse_non_regular(folder, stat.S_ISDIR, "a folder")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InfraError(f"{folder}: cannot create the folder ({e.strerror or e})") from None
        for url, remote in _urls(name, mirror, size):
            out.append(_fetch(url, folder / remote.name, remote, (deadline, timeout), progress))
    return out


#: the sides (px) MedMNIST files come in
MEDMNIST_SIZES = (28, 64, 128, 224)


def _urls(name: str, mirror: str | None, size: int) -> list[tuple[str, RemoteFile]]:
    """``(url, file)`` of dataset ``name``: MULAN ``<mirror>/<name>/<file>``; MedMNIST ``<mirror>/<file>``
    (Zenodo's own address ends with ``?download=1``)."""
    if name in MEDMNIST:
        remote = MEDMNIST[name][size]
        base = (mirror or MEDMNIST_MIRROR).rstrip("/")
        return [(f"{base}/{remote.name}" + ("?download=1" if mirror is None else ""), remote)]
    base = (mirror or DEFAULT_MIRROR).rstrip("/")
    return [(f"{base}/{name}/{remote.name}", remote) for remote in CATALOG[name]]


def _refuse_non_regular(path: Path, is_kind: Callable[[int], bool], kind: str) -> None:
    """InputError (exit 2) when ``path`` exists but is not ``kind`` (a FIFO, a device...); never opens it."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise InfraError(f"{path}: cannot inspect ({e.strerror or e})") from None
    if not is_kind(mode):
        raise InputError(f"{path}: exists and is not {kind} (a FIFO, device or other special file?); "
                         "remove it or choose another --dir")


def _fetch(url: str, target: Path, remote: RemoteFile, limit: tuple[float, float], progress: Progress | None) -> Path:
    """One file: skip a verified copy, else download to a temporary file, verify, rename.
    ``limit`` is (the ``time.monotonic()`` deadline, the --timeout it came from)."""
    import urllib.error

    _refuse_non_regular(target, stat.S_ISREG, "a regular file")
    algorithm, expected = remote.check
    if target.is_file() and sha256_of(target, algorithm) == expected:
        if progress:
            progress(target.name, remote.size or 0, remote.size)
        return target
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        with os.fdopen(fd, "wb") as f:
            digest = _stream(url, f, target.name, remote.size, limit[0], progress, algorithm)
        if digest != expected:
            raise InfraError(f"{url}: {'MD5' if algorithm == 'md5' else 'SHA-256'} mismatch (got {digest[:16]}..., "
                             f"expected {expected[:16]}...); the download was discarded")
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
        return target
    except (urllib.error.URLError, OSError) as e:
        reason = e if isinstance(e, TimeoutError) else getattr(e, "reason", None) or getattr(e, "strerror", None) or e
        if isinstance(reason, TimeoutError):
            raise InfraError(f"{url}: not complete within --timeout {limit[1]:g} s; the download was discarded") from None
        raise InfraError(f"{url}: cannot download ({reason})") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _stream(url: str, f, name: str, size: int | None, deadline: float, progress: Progress | None,
            algorithm: str = "sha256") -> str:
    """Copy ``url`` into ``f``; the SHA-256 (or ``algorithm``'s) hex digest of what arrived.

    Raises:
        InfraError: the mirror declares (Content-Length) or sends more or other than ``size`` bytes
            (``size`` None: not checked).
        TimeoutError: ``deadline`` (``time.monotonic()``) passed before the last byte.
    """
    import urllib.request

    h = hashlib.new(algorithm)
    with urllib.request.urlopen(url, timeout=_left(deadline)) as resp:  # http(s) or file:// only (checked above)
        declared = resp.headers.get("Content-Length")
        if size is not None and declared and declared.isdigit() and int(declared) != size:
            raise InfraError(f"{url}: the mirror declares {declared} bytes, expected {size}; "
                             "the download was discarded")
        sock = _socket_of(resp)
        done = 0
        while True:
            if sock is not None:
                sock.settimeout(_left(deadline))
            block = resp.read1(_CHUNK) if hasattr(resp, "read1") else resp.read(_CHUNK)
            if not block:
                return h.hexdigest()
            done += len(block)
            if size is not None and done > size:
                raise InfraError(f"{url}: more than the expected {size} bytes arrived; the download was discarded")
            f.write(block)
            h.update(block)
            if progress:
                progress(name, done, size)
            _left(deadline)


def _left(deadline: float) -> float:
    """Seconds until ``deadline`` (> 0); TimeoutError once it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left


def _socket_of(resp):
    """The socket under an HTTP response (None for file://), so each read waits only until the deadline."""
    raw = getattr(getattr(resp, "fp", None), "raw", None)
    return getattr(raw, "_sock", None)


def _umask() -> int:
    """The process umask, read without changing it (from /proc where available, else 0o022)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022
