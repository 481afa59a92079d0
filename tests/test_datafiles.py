"""Tests for the dataset file readers: IDX, CIFAR-10 batches, safe unpickling, downloads.

Every file is written here, in tmp_path, by small independent writers; nothing touches the
network (the URL opener is replaced by fakes that fail or serve bytes from memory).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import shlex
import struct
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from landscape.errors import DataError
from landscape.zoo import datafiles
from landscape.zoo.datafiles import load_cifar10, load_mnist_like, read_cifar_batch, read_idx

MNIST_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CIFAR_BATCHES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")


# --- writers (independent of the code under test) --------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """LeCun's IDX layout: 0, 0, type 0x08 (uint8), ndim, big-endian sizes, raw data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False) -> Path:
    raw = idx_bytes(array)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def mnist_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, np.uint8)


def write_mnist(folder: Path, n_train: int = 5, n_test: int = 3) -> dict[str, np.ndarray]:
    """The four MNIST files, train ones gzipped and test ones plain (both must be read)."""
    folder.mkdir(parents=True, exist_ok=True)
    x_train, y_train = mnist_arrays(n_train, seed=0)
    x_test, y_test = mnist_arrays(n_test, seed=1)
    arrays = dict(zip(MNIST_STEMS, (x_train, y_train, x_test, y_test), strict=True))
    for stem, array in arrays.items():
        gz = stem.startswith("train")
        write_idx(folder / (f"{stem}.gz" if gz else stem), array, gz=gz)
    return arrays


def cifar_batch(n: int, seed: int) -> dict[bytes, Any]:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"testing batch",
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"labels": [int(y) for y in rng.integers(0, 10, n)],
    }


def write_cifar(folder: Path, n: int = 2) -> dict[str, dict[bytes, Any]]:
    """Six tiny batches pickled by the standard pickle module (protocol 4: numpy's
    ``_reconstruct`` path and native bytes, like the real files' numpy globals)."""
    folder.mkdir(parents=True, exist_ok=True)
    batches = {name: cifar_batch(n, seed) for seed, name in enumerate(CIFAR_BATCHES)}
    for name, batch in batches.items():
        (folder / name).write_bytes(pickle.dumps(batch, protocol=4))
    return batches


def py2_str(value: bytes) -> bytes:
    """A Python 2 ``str`` opcode (SHORT_BINSTRING or BINSTRING)."""
    if len(value) < 256:
        return b"U" + bytes([len(value)]) + value
    return b"T" + struct.pack("<i", len(value)) + value


def py2_cifar_pickle(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch as Python 2 + numpy 1.x wrote the real CIFAR files: protocol 2, py2 str keys,
    ``numpy.core.multiarray._reconstruct`` and a uint8 dtype rebuilt from its state."""
    n, row = data.shape
    dtype = (
        b"cnumpy\ndtype\n" + py2_str(b"u1") + b"K\x00K\x01\x87R"  # dtype('u1', 0, 1)
        + b"(K\x03" + py2_str(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    )  # fmt: skip
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        + b"K\x00\x85" + py2_str(b"b") + b"\x87R"  # _reconstruct(ndarray, (0,), 'b')
        + b"(K\x01J" + struct.pack("<i", n) + b"J" + struct.pack("<i", row) + b"\x86"
        + dtype + b"\x89" + py2_str(data.tobytes()) + b"tb"  # setstate(1, shape, dtype, F, raw)
    )  # fmt: skip
    label_list = b"](" + b"".join(b"K" + bytes([y]) for y in labels) + b"e"
    return b"\x80\x02}(" + py2_str(b"data") + array + py2_str(b"labels") + label_list + b"u."


class FakeResponse(io.BytesIO):
    """What ``urllib.request.urlopen`` returns, served from memory."""

    headers: ClassVar[dict[str, str]] = {}


def serve(monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes]) -> list[str]:
    """Replace the URL opener by one serving ``files`` (keyed by URL); returns the URLs hit."""
    hits: list[str] = []

    def fake_urlopen(url: str, timeout: float) -> FakeResponse:
        hits.append(url)
        if url not in files:
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)  # type: ignore[arg-type]
        return FakeResponse(files[url])

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    return hits


def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(url: str, timeout: float) -> FakeResponse:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)


def md5(raw: bytes) -> str:
    return hashlib.md5(raw, usedforsecurity=False).hexdigest()


# --- IDX --------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("shape", [(7,), (4, 28, 28), (0, 3, 5)], ids=["labels", "images", "empty"])
def test_read_idx_round_trips(tmp_path: Path, gz: bool, shape: tuple[int, ...]) -> None:
    array = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    result = read_idx(write_idx(tmp_path / "f.idx", array, gz=gz))
    assert result.dtype == torch.uint8
    assert tuple(result.shape) == shape
    np.testing.assert_array_equal(result.numpy(), array)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_read_idx_rejects_truncated_data(tmp_path: Path, gz: bool) -> None:
    raw = idx_bytes(np.zeros((3, 28, 28), np.uint8))[:-10]
    path = tmp_path / "cut-idx3-ubyte"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(DataError, match=r"cut-idx3-ubyte: truncated IDX file.*\(3, 28, 28\)"):
        read_idx(path)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"\x00\x00", "truncated IDX file"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x01", "truncated IDX header"),
        (b"\x00\x00\x0d\x01\x00\x00\x00\x01abcd", "magic number 0x00000d01"),  # float32
        (b"PK\x03\x04rest", "not an IDX file"),
        (idx_bytes(np.zeros(4, np.uint8)) + b"\x00\x00", "2 unexpected bytes"),
    ],
    ids=["no-magic", "short-header", "float-type", "zip", "trailing"],
)
def test_read_idx_rejects_corrupt_files(tmp_path: Path, raw: bytes, match: str) -> None:
    path = tmp_path / "bad.idx"
    path.write_bytes(raw)
    with pytest.raises(DataError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_rejects_truncated_gzip_stream(tmp_path: Path) -> None:
    packed = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8)))
    path = tmp_path / "labels.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match=r"labels\.gz: corrupt or truncated gzip"):
        read_idx(path)


def test_read_idx_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cannot read .*nowhere"):
        read_idx(tmp_path / "nowhere")


# --- MNIST-like -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_load_mnist_like_reads_plain_and_gzip_files(tmp_path: Path, name: Any) -> None:
    arrays = write_mnist(tmp_path / name)
    (x_train, y_train), (x_test, y_test) = load_mnist_like(tmp_path, name, download=False)
    assert (x_train.dtype, y_train.dtype) == (torch.uint8, torch.int64)
    assert (tuple(x_train.shape), tuple(y_train.shape)) == ((5, 28, 28), (5,))
    assert (tuple(x_test.shape), tuple(y_test.shape)) == ((3, 28, 28), (3,))
    for tensor, stem in zip((x_train, y_train, x_test, y_test), MNIST_STEMS, strict=True):
        np.testing.assert_array_equal(tensor.numpy(), arrays[stem])


def test_load_mnist_like_names_the_missing_file_and_the_flag(tmp_path: Path) -> None:
    write_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError) as info:
        load_mnist_like(tmp_path, "mnist", download=False)
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte" in message
    assert "train-images" not in message  # only what is missing
    assert str(tmp_path / "mnist") in message
    assert "--set data.download=true" in message


def test_load_mnist_like_rejects_mismatched_pairs(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    write_mnist(folder)
    write_idx(folder / "t10k-labels-idx1-ubyte", np.zeros(2, np.uint8))  # 3 images
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.*3 images"):
        load_mnist_like(tmp_path, "mnist", download=False)


def test_load_mnist_like_rejects_wrong_image_size(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    write_mnist(folder)
    write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((3, 32, 32), np.uint8))
    with pytest.raises(DataError, match=r"shape \(n, 28, 28\), got \(3, 32, 32\)"):
        load_mnist_like(tmp_path, "mnist", download=False)


def test_load_mnist_like_rejects_labels_outside_the_classes(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    write_mnist(folder)
    write_idx(folder / "t10k-labels-idx1-ubyte", np.array([1, 10, 2], np.uint8))
    with pytest.raises(DataError, match=r"label 10 is outside the classes 0\.\.9"):
        load_mnist_like(tmp_path, "mnist", download=False)


def test_load_mnist_like_rejects_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown MNIST-like dataset 'kmnist'; known: mnist"):
        load_mnist_like(tmp_path, "kmnist", download=False)  # type: ignore[arg-type]


def test_mnist_download_fetches_only_missing_files_and_verifies_md5(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "fashion-mnist"
    arrays = write_mnist(folder)
    served = gzip.compress(idx_bytes(arrays["t10k-images-idx3-ubyte"]))
    (folder / "t10k-images-idx3-ubyte").unlink()
    mirror = datafiles._MIRRORS["fashion-mnist"]
    url = f"{mirror.base_url}t10k-images-idx3-ubyte.gz"
    hits = serve(monkeypatch, {url: served})
    patched = datafiles._Mirror(mirror.base_url, {"t10k-images-idx3-ubyte": md5(served)})
    monkeypatch.setitem(datafiles._MIRRORS, "fashion-mnist", patched)

    _, (x_test, _) = load_mnist_like(tmp_path, "fashion-mnist", download=True)

    assert hits == [url]
    np.testing.assert_array_equal(x_test.numpy(), arrays["t10k-images-idx3-ubyte"])
    assert (folder / "t10k-images-idx3-ubyte.gz").read_bytes() == served
    assert not list(folder.glob(".*part"))


def test_mnist_download_rejects_a_checksum_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real published MD5s are in force; the served bytes are not the real file.
    url = f"{datafiles._MIRRORS['mnist'].base_url}train-images-idx3-ubyte.gz"
    serve(monkeypatch, {url: gzip.compress(b"not mnist")})
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: MD5 .* f68b3c2d"):
        load_mnist_like(tmp_path, "mnist", download=True)
    assert list((tmp_path / "mnist").iterdir()) == []  # neither the file nor a temp


def test_mnist_download_failure_names_the_url_and_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    offline(monkeypatch)
    with pytest.raises(DataError) as info:
        load_mnist_like(tmp_path, "mnist", download=True)
    message = str(info.value)
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz" in message
    assert "Temporary failure in name resolution" in message
    assert list((tmp_path / "mnist").iterdir()) == []


def test_mnist_download_reports_http_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    serve(monkeypatch, {})
    with pytest.raises(DataError, match=r"cannot download http://fashion-mnist.*: HTTP 404"):
        load_mnist_like(tmp_path, "fashion-mnist", download=True)


# --- CIFAR-10 ---------------------------------------------------------------------------------


def test_load_cifar10_round_trips(tmp_path: Path) -> None:
    batches = write_cifar(tmp_path / "cifar-10-batches-py", n=2)
    (x_train, y_train), (x_test, y_test) = load_cifar10(tmp_path, download=False)
    assert (x_train.dtype, y_train.dtype) == (torch.uint8, torch.int64)
    assert (tuple(x_train.shape), tuple(y_train.shape)) == ((10, 3, 32, 32), (10,))
    assert (tuple(x_test.shape), tuple(y_test.shape)) == ((2, 3, 32, 32), (2,))
    train_labels = [y for i in range(1, 6) for y in batches[f"data_batch_{i}"][b"labels"]]
    np.testing.assert_array_equal(y_train.numpy(), train_labels)
    np.testing.assert_array_equal(y_test.numpy(), batches["test_batch"][b"labels"])
    # A row is the red plane, then green, then blue, each 32 rows of 32 pixels.
    row = batches["data_batch_2"][b"data"][1]
    np.testing.assert_array_equal(x_train[3, 1].numpy(), row[1024:2048].reshape(32, 32))
    np.testing.assert_array_equal(x_test.numpy().reshape(2, -1), batches["test_batch"][b"data"])


def test_read_cifar_batch_reads_the_python2_numpy1_layout(tmp_path: Path) -> None:
    data = np.random.default_rng(3).integers(0, 256, (2, 3072), dtype=np.uint8)
    path = tmp_path / "data_batch_1"
    path.write_bytes(py2_cifar_pickle(data, [7, 0]))
    images, labels = read_cifar_batch(path)
    np.testing.assert_array_equal(images.numpy().reshape(2, -1), data)
    assert labels.tolist() == [7, 0]
    assert labels.dtype == torch.int64


class RunsAShellCommand:
    """Unpickling this calls ``os.system(command)``: the classic malicious pickle."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (self.command,)


def test_read_cifar_batch_refuses_a_pickle_that_runs_code(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    batch = cifar_batch(1, seed=0)
    batch[b"labels"] = RunsAShellCommand(f"touch {shlex.quote(str(marker))}")
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol=4))  # the array comes first and is allowed
    with pytest.raises(DataError, match=r"data_batch_1: refusing to load (posix|nt|os)\.system"):
        read_cifar_batch(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "global_name",
    ["builtins\neval", "os\nsystem", "subprocess\nPopen", "numpy\nload", "numpy.lib.npyio\nload"],
)
def test_read_cifar_batch_refuses_every_other_global(tmp_path: Path, global_name: str) -> None:
    path = tmp_path / "test_batch"
    path.write_bytes(b"\x80\x02c" + global_name.encode() + b"\n.")  # GLOBAL, STOP
    module, name = global_name.split("\n")
    with pytest.raises(DataError, match=f"refusing to load {module}.{name}"):
        read_cifar_batch(path)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (pickle.dumps([1, 2]), "a CIFAR-10 batch is a dict, found list"),
        (pickle.dumps({b"labels": [1]}), "no 'data' entry"),
        (pickle.dumps({b"data": np.zeros((1, 3072), np.float32), b"labels": [1]}), "uint8"),
        (pickle.dumps({b"data": np.zeros((1, 100), np.uint8), b"labels": [1]}), r"\(1, 100\)"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}), "1 labels for 2"),
        (pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": ["a"]}), "list of ints"),
        (pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [12]}), "label 12"),
        (pickle.dumps(cifar_batch(2, 0))[:-40], "corrupt CIFAR-10 batch"),
        (b"", "corrupt CIFAR-10 batch"),
    ],
    ids=["not-dict", "no-data", "float", "row", "count", "str-labels", "range", "cut", "empty"],
)
def test_read_cifar_batch_rejects_malformed_batches(tmp_path: Path, payload: bytes, match: str) -> None:
    path = tmp_path / "data_batch_4"
    path.write_bytes(payload)
    with pytest.raises(DataError, match=match) as info:
        read_cifar_batch(path)
    assert "data_batch_4" in str(info.value)


def test_load_cifar10_names_the_missing_batch_and_the_flag(tmp_path: Path) -> None:
    write_cifar(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError) as info:
        load_cifar10(tmp_path, download=False)
    message = str(info.value)
    assert "missing data_batch_3 in" in message
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "--set data.download=true" in message


def cifar_archive(batches: dict[str, dict[bytes, Any]], extra: list[tarfile.TarInfo]) -> bytes:
    """A ``cifar-10-python.tar.gz`` lookalike holding ``batches`` and ``extra`` members."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        folder = tarfile.TarInfo("cifar-10-batches-py")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, batch in batches.items():
            raw = pickle.dumps(batch, protocol=4)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
        for member in extra:
            tar.addfile(member, io.BytesIO(b"x" * member.size))
    return buffer.getvalue()


def test_load_cifar10_downloads_and_extracts_the_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    batches = {name: cifar_batch(1, seed) for seed, name in enumerate(CIFAR_BATCHES)}
    archive = cifar_archive(batches, [])
    hits = serve(monkeypatch, {datafiles._CIFAR_URL: archive})
    monkeypatch.setattr(datafiles, "_CIFAR_MD5", md5(archive))

    (x_train, y_train), (x_test, _) = load_cifar10(tmp_path, download=True)

    assert hits == [datafiles._CIFAR_URL]
    assert tuple(x_train.shape) == (5, 3, 32, 32)
    np.testing.assert_array_equal(x_test.numpy().reshape(1, -1), batches["test_batch"][b"data"])
    assert y_train.tolist() == [batches[f"data_batch_{i}"][b"labels"][0] for i in range(1, 6)]
    assert sorted(p.name for p in (tmp_path / "cifar-10-batches-py").iterdir()) == sorted(CIFAR_BATCHES)
    load_cifar10(tmp_path, download=False)  # now offline-ready


def test_load_cifar10_extracts_an_archive_placed_by_hand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    offline(monkeypatch)
    batches = {name: cifar_batch(1, seed) for seed, name in enumerate(CIFAR_BATCHES)}
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(cifar_archive(batches, []))
    (_, y_train), _ = load_cifar10(tmp_path, download=False)
    assert len(y_train) == 5


def unsafe_member(kind: str) -> tarfile.TarInfo:
    names = {"parent": "cifar-10-batches-py/../../escaped", "absolute": "/tmp/escaped"}
    member = tarfile.TarInfo(names.get(kind, "cifar-10-batches-py/link"))
    if kind == "symlink":
        member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
    else:
        member.size = 3
    return member


@pytest.mark.parametrize("kind", ["parent", "absolute", "symlink"])
def test_load_cifar10_refuses_an_unsafe_archive(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "data"
    root.mkdir()
    batches = {name: cifar_batch(1, seed) for seed, name in enumerate(CIFAR_BATCHES)}
    (root / "cifar-10-python.tar.gz").write_bytes(cifar_archive(batches, [unsafe_member(kind)]))
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz: unsafe member"):
        load_cifar10(root, download=False)
    assert not (tmp_path / "escaped").exists()
    assert not (root / "cifar-10-batches-py").exists()  # nothing extracted at all


def test_load_cifar10_rejects_an_archive_without_the_batches(tmp_path: Path) -> None:
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(cifar_archive({}, []))
    with pytest.raises(DataError, match="no file cifar-10-batches-py/data_batch_1"):
        load_cifar10(tmp_path, download=False)


def test_load_cifar10_rejects_a_corrupt_archive(tmp_path: Path) -> None:
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DataError, match="cannot extract"):
        load_cifar10(tmp_path, download=False)


def test_load_cifar10_download_failure_names_the_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    offline(monkeypatch)
    with pytest.raises(DataError) as info:
        load_cifar10(tmp_path, download=True)
    assert "cannot download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in str(info.value)
    assert "Temporary failure" in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("protocol", [2, 3, 5])
def test_cifar_batches_resaved_by_python3_load(tmp_path: Path, protocol: int) -> None:
    rng = np.random.default_rng(protocol)
    rows = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
    batch = {b"data": rows, b"labels": [1, 2, 3, 4]}
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    images, labels = datafiles.read_cifar_batch(path)
    assert images.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(images.reshape(4, -1).numpy(), rows)
    assert labels.tolist() == [1, 2, 3, 4]
