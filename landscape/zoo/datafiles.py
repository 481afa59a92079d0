"""Readers for the standard files of MNIST, Fashion-MNIST and CIFAR-10, with opt-in download.

The files are read from a local folder in the formats their authors publish:

- MNIST and Fashion-MNIST: IDX files (LeCun's format: a big-endian magic number
  ``0x000008NN`` -- uint8 elements, ``NN`` dimensions -- then one big-endian uint32 size per
  dimension, then the raw bytes), plain or gzip-compressed.
- CIFAR-10: the "python version" batches, pickled dicts holding a uint8 ``(n, 3072)`` array
  under ``b"data"`` and a list of ints under ``b"labels"``. Pickles can run arbitrary code,
  so they are read with :class:`_ArrayOnlyUnpickler`, which resolves only the three globals
  that numpy array reconstruction needs and refuses every other one.

Nothing touches the network unless the caller passes ``download=True`` (the config key
``data.download``). Downloads are written to a temporary name in the target folder and
renamed only once complete and, where the published MD5 is known, verified; a failed
download never leaves a partial file behind.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import importlib
import math
import pickle
import struct
import tarfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, Final, Literal

import numpy as np
import torch

from landscape.atomic import atomic_path
from landscape.errors import DataError

Split = tuple[torch.Tensor, torch.Tensor]
"""``(inputs, labels)``: uint8 images and int64 class labels."""

N_CLASSES: Final = 10
_DOWNLOAD_HINT: Final = "--set data.download=true"
_TIMEOUT_S: Final = 60.0
_CHUNK_BYTES: Final = 1 << 20
_GZIP_MAGIC: Final = b"\x1f\x8b"

# --- IDX (MNIST, Fashion-MNIST) ------------------------------------------------------------

# Magic number -> number of dimensions. Byte 3 is the element type (0x08 = uint8), byte 4
# the number of dimensions; MNIST-like data only ever uses uint8 labels (1-D) and images (3-D).
_IDX_MAGICS: Final[Mapping[int, int]] = {0x00000801: 1, 0x00000803: 3}

_MNIST_FILES: Final = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_MNIST_IMAGE_SHAPE: Final = (28, 28)


@dataclass(frozen=True)
class _Mirror:
    """Where the ``.gz`` files of an MNIST-like dataset are published, and their MD5s."""

    base_url: str
    md5: Mapping[str, str]  # file name without ".gz" -> MD5 of the ".gz" file


# MD5s are the ones published with the datasets (and used by torchvision). Fashion-MNIST is
# served over plain HTTP, so its checksums are what guards the download's integrity.
_MIRRORS: Final[dict[str, _Mirror]] = {
    "mnist": _Mirror(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        {
            "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    "fashion-mnist": _Mirror(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        {
            "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    ),
}


def read_idx(path: Path) -> torch.Tensor:
    """Read an IDX file of uint8 labels (magic ``0x801``) or images (``0x803``).

    A gzip-compressed file (``.gz``) is recognised by its own magic bytes and decompressed
    transparently. The header's sizes must account for exactly the bytes that follow.

    Returns:
        A uint8 tensor of the shape the header declares: ``(n,)`` or ``(n, rows, cols)``.

    Raises:
        DataError: the file cannot be read, is not such an IDX file, or is truncated or has
            trailing bytes; the message names the file.
    """
    raw = _read_maybe_gzipped(path)
    shape = _idx_shape(raw, path)
    offset = 4 + 4 * len(shape)
    expected, found = math.prod(shape), len(raw) - offset
    if found < expected:
        raise DataError(
            f"{path}: truncated IDX file: the header declares shape {shape} "
            f"({expected} bytes of data) but only {found} bytes follow"
        )
    if found > expected:
        raise DataError(
            f"{path}: corrupt IDX file: {found - expected} unexpected bytes after the "
            f"{expected} bytes of data that shape {shape} declares"
        )
    array = np.frombuffer(raw, dtype=np.uint8, count=expected, offset=offset).reshape(shape)
    return torch.from_numpy(array.copy())  # copy: frombuffer views the read-only bytes


def _read_maybe_gzipped(path: Path) -> bytes:
    """The file's bytes, decompressed when they start with the gzip magic."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from err
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
        raise DataError(f"{path}: corrupt or truncated gzip data ({err})") from err


def _idx_shape(raw: bytes, path: Path) -> tuple[int, ...]:
    """Validate the IDX magic number and return the declared shape."""
    if len(raw) < 4:
        raise DataError(f"{path}: truncated IDX file: {len(raw)} bytes, not even a magic number")
    magic = int.from_bytes(raw[:4], "big")
    ndim = _IDX_MAGICS.get(magic)
    if ndim is None:
        raise DataError(
            f"{path}: not an IDX file of uint8 labels or images: magic number 0x{magic:08x}, "
            "expected 0x00000801 (labels) or 0x00000803 (images)"
        )
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path}: truncated IDX header: {ndim} dimension sizes expected")
    return struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])


def load_mnist_like(root: Path, name: Literal["mnist", "fashion-mnist"], download: bool) -> tuple[Split, Split]:
    """Load MNIST or Fashion-MNIST from the four IDX files in ``root/<name>/``.

    Each file may be stored plain or as ``<file>.gz``. Missing files are fetched from the
    dataset's mirror only when ``download`` is true.

    Returns:
        ``((train_images, train_labels), (test_images, test_labels))``: images uint8
        ``(n, 28, 28)``, labels int64 ``(n,)``.

    Raises:
        DataError: an unknown name, a missing file (and ``download`` false), a failed
            download, or a file that is corrupt or does not match its partner.
    """
    mirror = _MIRRORS.get(name)
    if mirror is None:
        raise DataError(f"unknown MNIST-like dataset {name!r}; known: {', '.join(_MIRRORS)}")
    folder = root / name
    missing = [stem for stem in _MNIST_FILES if _find_idx(folder, stem) is None]
    if missing and not download:
        raise DataError(
            f"{name}: missing {', '.join(missing)} (plain or .gz) in {folder}; put the files "
            f"there, or add {_DOWNLOAD_HINT} to fetch them from {mirror.base_url} (needs network)"
        )
    for stem in missing:
        _download(f"{mirror.base_url}{stem}.gz", folder / f"{stem}.gz", mirror.md5.get(stem))
    train = _mnist_split(folder, "train-images-idx3-ubyte", "train-labels-idx1-ubyte")
    test = _mnist_split(folder, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    return train, test


def _find_idx(folder: Path, stem: str) -> Path | None:
    """``folder/stem`` if present, else ``folder/stem.gz`` if present, else None."""
    return next((c for c in (folder / stem, folder / f"{stem}.gz") if c.is_file()), None)


def _mnist_split(folder: Path, images_stem: str, labels_stem: str) -> Split:
    """Read one images/labels pair and check that they belong together."""
    images_path, labels_path = _find_idx(folder, images_stem), _find_idx(folder, labels_stem)
    if images_path is None or labels_path is None:  # only if deleted since we looked
        raise DataError(f"{images_stem} or {labels_stem} disappeared from {folder}")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dim() != 3 or tuple(images.shape[1:]) != _MNIST_IMAGE_SHAPE:
        raise DataError(f"{images_path}: expected images of shape (n, 28, 28), got {tuple(images.shape)}")
    if labels.dim() != 1 or len(labels) != len(images):
        raise DataError(
            f"{labels_path}: holds labels of shape {tuple(labels.shape)}, but {images_path} holds {len(images)} images"
        )
    return images, _checked_labels(labels.long(), labels_path)


def _checked_labels(labels: torch.Tensor, source: Path) -> torch.Tensor:
    """Return int64 ``labels`` after checking they are class indices in ``0..9``."""
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= N_CLASSES):
        bad = int(labels.max()) if int(labels.max()) >= N_CLASSES else int(labels.min())
        raise DataError(f"{source}: label {bad} is outside the classes 0..{N_CLASSES - 1}")
    return labels


# --- CIFAR-10 -------------------------------------------------------------------------------

_CIFAR_URL: Final = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_CIFAR_MD5: Final = "c58f30108f718f92721af3b95e74349a"
_CIFAR_ARCHIVE: Final = "cifar-10-python.tar.gz"
_CIFAR_FOLDER: Final = "cifar-10-batches-py"
_CIFAR_TRAIN: Final = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST: Final = "test_batch"
_CIFAR_IMAGE_SHAPE: Final = (3, 32, 32)  # a row of b"data" is R plane, G plane, B plane


def _numpy_core(module: str, name: str) -> Callable[..., Any]:
    """``numpy._core.<module>.<name>`` (numpy >= 2), found without the deprecated ``numpy.core`` alias."""
    try:
        found = importlib.import_module(f"numpy._core.{module}")
    except ModuleNotFoundError:  # pragma: no cover - numpy 1.x
        found = importlib.import_module(f"numpy.core.{module}")
    function: Callable[..., Any] = getattr(found, name)
    return function


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """What Python 3's protocol-2 pickles call (``_codecs.encode``) to rebuild bytes; only latin-1."""
    if encoding != "latin1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


# (module, name) -> object: the only globals a pickled numpy uint8 array needs. Old pickles
# (CIFAR's, made with numpy 1.x) name numpy.core, newer ones numpy._core; both map to the
# same function, so a refused name never reaches an import.
_PICKLE_ALLOWED: Final[Mapping[tuple[str, str], Any]] = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_core("multiarray", "_reconstruct"),  # the array reconstructor
    ("numpy._core.multiarray", "_reconstruct"): _numpy_core("multiarray", "_reconstruct"),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # batches re-saved by Python 3: protocol 2 spells bytes through _codecs.encode, protocol 5
    # stores array data out of band
    ("_codecs", "encode"): _latin1_bytes,
    ("numpy.core.numeric", "_frombuffer"): _numpy_core("numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): _numpy_core("numeric", "_frombuffer"),
}

# What unpickling a damaged stream can raise besides UnpicklingError (see the pickle docs).
_PICKLE_ERRORS: Final = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    OverflowError,
    struct.error,
)


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays, dicts, lists, ints and bytes, nothing more.

    Every global a pickle names goes through :meth:`find_class`; anything outside
    ``_PICKLE_ALLOWED`` (``os.system``, ``builtins.eval``, any class with a ``__reduce__``)
    is refused before it is imported, so a malicious file cannot run code.
    """

    def __init__(self, file: IO[bytes], source: Path) -> None:
        # encoding="bytes": CIFAR's Python 2 str objects become bytes (keys b"data", ...).
        super().__init__(file, encoding="bytes")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        """Resolve ``module.name`` from the allow-list, or raise :class:`DataError`."""
        try:
            return _PICKLE_ALLOWED[(module, name)]
        except KeyError:
            raise DataError(
                f"{self._source}: refusing to load {module}.{name} from a pickle; only numpy "
                "arrays are allowed in a CIFAR-10 batch (the file is corrupt or malicious)"
            ) from None


def read_cifar_batch(path: Path) -> Split:
    """Read one CIFAR-10 python batch (``data_batch_N`` or ``test_batch``) safely.

    Returns:
        ``(images, labels)``: uint8 ``(n, 3, 32, 32)`` and int64 ``(n,)``.

    Raises:
        DataError: unreadable, corrupt, refused (a global other than numpy array
            reconstruction), or not shaped like a CIFAR-10 batch.
    """
    try:
        with path.open("rb") as file:
            batch = _ArrayOnlyUnpickler(file, path).load()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from err
    except _PICKLE_ERRORS as err:
        raise DataError(f"{path}: corrupt CIFAR-10 batch ({type(err).__name__}: {err})") from err
    if not isinstance(batch, dict):
        raise DataError(f"{path}: a CIFAR-10 batch is a dict, found {type(batch).__name__}")
    data, labels = _batch_entry(batch, "data", path), _batch_entry(batch, "labels", path)
    return _cifar_images(data, path), _cifar_labels(labels, len(data), path)


def _batch_entry(batch: dict[Any, Any], key: str, path: Path) -> Any:
    """``batch[b"key"]`` (Python 2 pickles) or ``batch["key"]`` (Python 3 ones)."""
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    raise DataError(f"{path}: no {key!r} entry in the CIFAR-10 batch; keys: {list(batch)}")


def _cifar_images(data: Any, path: Path) -> torch.Tensor:
    """Check the ``(n, 3072)`` uint8 rows and view them as ``(n, 3, 32, 32)`` images."""
    row = math.prod(_CIFAR_IMAGE_SHAPE)
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == row):
        shape = f"has shape {data.shape}" if isinstance(data, np.ndarray) else f"is a {type(data).__name__}"
        raise DataError(f"{path}: b'data' {shape}; expected a uint8 array of shape (n, {row})")
    return torch.from_numpy(np.array(data.reshape(-1, *_CIFAR_IMAGE_SHAPE), copy=True))


def _cifar_labels(labels: Any, n: int, path: Path) -> torch.Tensor:
    """Check ``n`` integer labels and return them as int64."""
    array = np.asarray(labels) if isinstance(labels, list | tuple | np.ndarray) else None
    if array is None or array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
        raise DataError(f"{path}: b'labels' must be a list of ints")
    if len(array) != n:
        raise DataError(f"{path}: {len(array)} labels for {n} images")
    return _checked_labels(torch.from_numpy(array.astype(np.int64)), path)


def load_cifar10(root: Path, download: bool) -> tuple[Split, Split]:
    """Load CIFAR-10 from the python batches in ``root/cifar-10-batches-py/``.

    Missing batches are extracted from ``root/cifar-10-python.tar.gz`` when that archive is
    present; otherwise it is downloaded (and MD5-verified) first, only if ``download`` is
    true. Extraction writes only the batch files, to names chosen here, and refuses an
    archive with absolute, ``..`` or link members.

    Returns:
        ``((train_images, train_labels), (test_images, test_labels))``: images uint8
        ``(n, 3, 32, 32)``, labels int64 ``(n,)`` (50000 and 10000 for the real data).

    Raises:
        DataError: a missing batch (and no archive, and ``download`` false), a failed
            download, an unsafe or incomplete archive, or a corrupt or refused batch.
    """
    folder = root / _CIFAR_FOLDER
    missing = [name for name in (*_CIFAR_TRAIN, _CIFAR_TEST) if not (folder / name).is_file()]
    if missing:
        _restore_cifar_batches(root, missing, download)
    train = [read_cifar_batch(folder / name) for name in _CIFAR_TRAIN]
    images, labels = zip(*train, strict=True)
    return (torch.cat(images), torch.cat(labels)), read_cifar_batch(folder / _CIFAR_TEST)


def _restore_cifar_batches(root: Path, missing: list[str], download: bool) -> None:
    """Extract the ``missing`` batches from the archive, downloading it if allowed."""
    archive = root / _CIFAR_ARCHIVE
    if not archive.is_file():
        if not download:
            raise DataError(
                f"cifar10: missing {', '.join(missing)} in {root / _CIFAR_FOLDER} (and no "
                f"{_CIFAR_ARCHIVE} in {root}); put the files there, or add {_DOWNLOAD_HINT} "
                f"to fetch them from {_CIFAR_URL} (needs network)"
            )
        _download(_CIFAR_URL, archive, _CIFAR_MD5)
    _extract_batches(archive, root / _CIFAR_FOLDER, missing)


def _extract_batches(archive: Path, folder: Path, names: list[str]) -> None:
    """Copy ``cifar-10-batches-py/<name>`` out of ``archive`` into ``folder`` for each name."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, archive)
            by_path = {PurePosixPath(member.name): member for member in members}
            for name in names:
                entry = by_path.get(PurePosixPath(_CIFAR_FOLDER, name))
                source = tar.extractfile(entry) if entry is not None else None
                if source is None:
                    raise DataError(f"{archive}: no file {_CIFAR_FOLDER}/{name} in the archive")
                with source:
                    _write_atomically(source, folder / name, expected_md5=None)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DataError(f"{archive}: cannot extract ({err}); delete it and retry") from err


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Refuse a member that could write outside the target folder or is not a plain entry."""
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or "\\" in member.name:
        raise DataError(f"{archive}: unsafe member {member.name!r} (absolute path or '..')")
    if not (member.isfile() or member.isdir()):
        raise DataError(f"{archive}: unsafe member {member.name!r} (a link or special file)")


# --- download ------------------------------------------------------------------------------


def _download(url: str, target: Path, expected_md5: str | None) -> None:
    """Fetch ``url`` into ``target`` atomically, verifying ``expected_md5`` when given."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
            _write_atomically(response, target, expected_md5, origin=url)
    except (OSError, http.client.HTTPException) as err:  # URLError is an OSError
        raise DataError(
            f"cannot download {url}: {_reason(err)}; check the network, or put the file at {target} by hand"
        ) from err


def _reason(err: Exception) -> str:
    """A short human reason for a network failure."""
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        return str(err.reason)
    return str(err) or type(err).__name__


def _write_atomically(source: IO[bytes], target: Path, expected_md5: str | None, origin: str = "") -> None:
    """Stream ``source`` into ``target`` atomically (:mod:`landscape.atomic`), checking its MD5 first.

    ``origin`` (the URL) only makes a checksum error more helpful.
    """
    digest = hashlib.md5(usedforsecurity=False)  # integrity check, not security
    with atomic_path(target) as temp, temp.open("wb") as out:
        while chunk := source.read(_CHUNK_BYTES):
            digest.update(chunk)
            out.write(chunk)
        if expected_md5 is not None and digest.hexdigest() != expected_md5:
            raise DataError(
                f"{origin or target.name}: MD5 {digest.hexdigest()} does not match the "
                f"published {expected_md5}; the download is corrupt, retry later"
            )
