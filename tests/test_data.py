"""Datasets through the registry: the shipped digits, synthetic closed forms, class selection,
user data files, and MNIST/CIFAR read from tiny files written here in their published formats."""

from __future__ import annotations

import gzip
import pickle
import struct
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

from landscape.config import DataConfig
from landscape.errors import DataError, RegistryError
from landscape.zoo.data import DATASETS, load_data

WritePy = Callable[[str, str], Path]


def _digits_table() -> np.ndarray:
    """The shipped CSV read directly (64 pixel columns 0..16, then the label): the oracle."""
    ref = resources.files("landscape").joinpath("zoo/data_files/digits.csv.gz")
    with ref.open("rb") as raw, gzip.open(raw, "rt") as fh:
        return np.loadtxt(fh, delimiter=",")


def _sorted_rows(a: np.ndarray) -> np.ndarray:
    return a[np.lexsort(a.T[::-1])]


# --- digits ----------------------------------------------------------------------------------


def test_digits_sizes_classes_and_scaling() -> None:
    data = load_data(DataConfig(name="digits"))
    assert len(data.train) + len(data.test) == 1797
    assert len(data.test) == 359  # round(0.2 · 1797)
    assert data.task == "classification"
    assert data.num_classes == 10
    assert data.input_shape == (1, 8, 8)
    assert data.output_shape == (10,)
    assert data.train.inputs.dtype == torch.float32
    assert data.train.targets.dtype == torch.int64
    both = torch.cat([data.train.inputs, data.test.inputs])
    assert float(both.min()) == 0.0 and float(both.max()) == 1.0  # pixels 0..16 scaled by 1/16
    labels = torch.cat([data.train.targets, data.test.targets])
    # the class sizes of the UCI optical digits test set (as in sklearn's load_digits)
    assert torch.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_digits_split_is_a_partition_of_the_shipped_table() -> None:
    data = load_data(DataConfig(name="digits"))
    table = _digits_table()
    mine = np.concatenate(
        [
            np.concatenate(
                [data.train.inputs.reshape(-1, 64).double().numpy() * 16, data.train.targets[:, None].numpy()], 1
            ),
            np.concatenate(
                [data.test.inputs.reshape(-1, 64).double().numpy() * 16, data.test.targets[:, None].numpy()], 1
            ),
        ]
    )
    np.testing.assert_array_equal(_sorted_rows(np.round(mine)), _sorted_rows(table))


def test_digits_split_is_fixed_across_calls_and_follows_the_seed() -> None:
    a, b = load_data(DataConfig()), load_data(DataConfig())
    assert torch.equal(a.train.inputs, b.train.inputs) and torch.equal(a.test.targets, b.test.targets)
    c = load_data(DataConfig(options={"seed": 1}))
    assert len(c.test) == len(a.test)
    assert not torch.equal(a.test.targets, c.test.targets)
    d = load_data(DataConfig(options={"test_fraction": 0.5}))
    assert len(d.test) == round(0.5 * 1797)


def test_max_train_and_max_test_take_the_first_samples() -> None:
    full = load_data(DataConfig())
    cut = load_data(DataConfig(max_train=100, max_test=7))
    assert (len(cut.train), len(cut.test)) == (100, 7)
    assert torch.equal(cut.train.inputs, full.train.inputs[:100])
    assert torch.equal(cut.test.targets, full.test.targets[:7])


# --- synthetic data with a known optimum -------------------------------------------------------


def _least_squares(data_split: tuple[torch.Tensor, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """w minimising ‖X w − y‖² in float64, and the residual vector."""
    x, y = (t.double().numpy() for t in data_split)
    w, *_ = np.linalg.lstsq(x, y, rcond=None)
    return w, y - x @ w


def test_linreg_without_noise_is_solved_exactly_by_least_squares() -> None:
    data = load_data(DataConfig(name="linreg", options={"noise": 0.0, "dim": 5, "n_train": 40, "n_test": 30}))
    assert data.task == "regression" and data.num_classes == 0
    assert data.input_shape == (5,) and data.output_shape == (1,)
    assert data.train.targets.dtype == torch.float32
    w, residual = _least_squares((data.train.inputs, data.train.targets))
    assert np.abs(residual).max() < 1e-5  # float32 targets, so "exactly" up to their rounding
    # the optimum fitted on train is the generating w*: it predicts the independent test split too
    x_test, y_test = data.test.inputs.double().numpy(), data.test.targets.double().numpy()
    np.testing.assert_allclose(x_test @ w, y_test, atol=1e-5)


def test_linreg_noise_level_shows_in_the_least_squares_residual() -> None:
    n, dim, noise = 2000, 8, 0.1
    data = load_data(DataConfig(name="linreg", options={"noise": noise, "dim": dim, "n_train": n}))
    _, residual = _least_squares((data.train.inputs, data.train.targets))
    # E‖r‖²/n = σ²(n − d)/n for Gaussian noise; its standard deviation is about σ²·√(2/n)
    expected = noise**2 * (n - dim) / n
    assert abs(float(np.mean(residual**2)) - expected) < 5 * noise**2 * np.sqrt(2 / n)


# --- class selection, binary, reconstruction ------------------------------------------------------


def test_classes_keeps_and_relabels_in_the_given_order() -> None:
    full = load_data(DataConfig())
    pair = load_data(DataConfig(classes=(8, 3)))  # 8 → 0, 3 → 1
    assert pair.num_classes == 2 and pair.task == "classification"
    for split in ("train", "test"):
        orig, sub = full.split(split), pair.split(split)
        keep = (orig.targets == 8) | (orig.targets == 3)
        assert torch.equal(sub.inputs, orig.inputs[keep])
        assert torch.equal(sub.targets, (orig.targets[keep] == 3).long())


def test_binary_gives_float_column_targets() -> None:
    full = load_data(DataConfig())
    data = load_data(DataConfig(classes=(3, 8), binary=True))
    assert data.task == "binary" and data.output_shape == (1,)
    for split in ("train", "test"):
        targets = data.split(split).targets
        assert targets.dtype == torch.float32 and targets.shape == (len(data.split(split)), 1)
        orig = full.split(split).targets
        expected = orig[(orig == 3) | (orig == 8)] == 8
        assert torch.equal(targets[:, 0], expected.float())


def test_binary_needs_exactly_two_classes() -> None:
    with pytest.raises(DataError, match=r"exactly 2 classes.*has 10"):
        load_data(DataConfig(binary=True))


def test_classes_need_labels() -> None:
    with pytest.raises(DataError, match="needs class labels"):
        load_data(DataConfig(name="linreg", classes=(0, 1)))


def test_input_target_is_reconstruction() -> None:
    data = load_data(DataConfig(target="input", max_train=50))
    assert data.task == "reconstruction" and data.num_classes == 0
    assert data.output_shape == (1, 8, 8)
    assert torch.equal(data.train.targets, data.train.inputs)
    assert torch.equal(data.test.targets, data.test.inputs)


# --- user data --------------------------------------------------------------------------------


def test_user_function_returning_tensor_pairs(write_py: WritePy) -> None:
    path = write_py(
        "mydata.py",
        """
        import torch

        def make(n=6):
            x = torch.arange(n * 3, dtype=torch.float64).reshape(n, 3)
            y = torch.arange(n) % 2
            return (x, y), (x[:2] + 0.5, y[:2])
        """,
    )
    data = load_data(DataConfig(name=f"{path}:make", options={"n": 6}))
    assert data.task == "classification" and data.num_classes == 2
    assert data.input_shape == (3,)
    assert data.train.inputs.dtype == torch.float32  # converted once, here
    np.testing.assert_array_equal(data.train.inputs.numpy(), np.arange(18).reshape(6, 3))
    np.testing.assert_array_equal(data.test.inputs.numpy(), np.arange(6).reshape(2, 3) + 0.5)
    assert data.train.targets.tolist() == [0, 1, 0, 1, 0, 1]


def test_user_function_returning_numpy_regression(write_py: WritePy) -> None:
    path = write_py(
        "npdata.py",
        """
        import numpy as np

        def make():
            x = np.linspace(-1, 1, 10, dtype=np.float32)[:, None]
            return (x, 2 * x[:, 0]), (x, 2 * x[:, 0])
        """,
    )
    data = load_data(DataConfig(name=f"{path}:make"))
    assert data.task == "regression"
    assert data.train.targets.shape == (10, 1)  # a 1-D float target becomes a column
    assert torch.equal(data.train.targets, 2 * data.train.inputs)


def test_user_function_returning_datasets(write_py: WritePy) -> None:
    path = write_py(
        "dsdata.py",
        """
        import torch
        from torch.utils.data import Dataset

        class Squares(Dataset):
            def __init__(self, n):
                self.n = n
            def __len__(self):
                return self.n
            def __getitem__(self, i):
                return torch.full((2, 2), float(i)), i % 3

        def make():
            return Squares(9), Squares(4)
        """,
    )
    data = load_data(DataConfig(name=f"{path}:make"))
    assert (len(data.train), len(data.test)) == (9, 4)
    assert data.input_shape == (2, 2)
    assert data.num_classes == 3
    assert torch.equal(data.train.inputs[:, 0, 0], torch.arange(9).float())
    assert data.train.targets.tolist() == [i % 3 for i in range(9)]


def test_user_file_that_does_not_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere.py"
    with pytest.raises(RegistryError, match=r"nowhere\.py.*does not exist;"):
        load_data(DataConfig(name=f"{missing}:make"))
    monkeypatch.chdir(tmp_path)  # a relative path (as saved in a checkpoint) read from another folder
    with pytest.raises(RegistryError, match=r"does not exist in '.*'; a relative path is read from the current folder"):
        load_data(DataConfig(name="nowhere.py:make"))


def test_user_file_without_the_function(write_py: WritePy) -> None:
    path = write_py("nofn.py", "def other():\n    pass\n")
    with pytest.raises(RegistryError, match="no callable named 'make_data'"):
        load_data(DataConfig(name=f"{path}:make_data"))


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("return 3", "must return \\(train, test\\), got int"),
        ("return (1, 2, 3)", "must return \\(train, test\\), got tuple"),
        ("return 'ab'", "must return \\(train, test\\), got str"),
        ("return 5, 6", "train split must be a torch Dataset or an \\(inputs, targets\\) pair, got int"),
        ("return (torch.zeros(3, 2), torch.zeros(4)), (torch.zeros(1, 2), torch.zeros(1))", "3 inputs but 4 targets"),
        ("return (torch.zeros(0, 2), torch.zeros(0)), (torch.zeros(1, 2), torch.zeros(1))", "is empty"),
    ],
)
def test_user_function_with_a_wrong_return_value(write_py: WritePy, body: str, match: str) -> None:
    path = write_py("bad.py", f"import torch\n\ndef make():\n    {body}\n")
    with pytest.raises(DataError, match=match):
        load_data(DataConfig(name=f"{path}:make"))


@pytest.mark.parametrize(("where", "value"), [("x", "nan"), ("x", "inf"), ("y", "nan")])
def test_non_finite_values_are_rejected(write_py: WritePy, where: str, value: str) -> None:
    path = write_py(
        "nan.py",
        f"""
        import torch

        def make():
            x, y = torch.zeros(4, 2), torch.zeros(4, 1)
            {where}[2, 0] = float("{value}")
            return (x, y), (torch.zeros(2, 2), torch.zeros(2, 1))
        """,
    )
    with pytest.raises(DataError, match=f"NaN or inf {'inputs' if where == 'x' else 'targets'}"):
        load_data(DataConfig(name=f"{path}:make"))


def test_user_function_rejecting_the_options(write_py: WritePy) -> None:
    path = write_py("opts.py", "def make(n=1):\n    raise AssertionError('not reached')\n")
    with pytest.raises(DataError, match=r"calling .*failed.*'m'"):
        load_data(DataConfig(name=f"{path}:make", options={"m": 3}))


def test_builtin_dataset_rejecting_the_options() -> None:
    with pytest.raises(DataError, match="dataset 'digits' rejected options"):
        load_data(DataConfig(options={"colour": True}))


def test_unknown_dataset_lists_the_known_ones() -> None:
    with pytest.raises(RegistryError) as info:
        load_data(DataConfig(name="imagenet"))
    message = str(info.value)
    assert "unknown dataset 'imagenet'" in message
    for name in ("digits", "linreg", "mnist", "fashion-mnist", "cifar10"):
        assert name in message
    assert set(DATASETS.names()) >= {"digits", "linreg", "blobs", "spirals", "mnist", "fashion-mnist", "cifar10"}


# --- MNIST-like and CIFAR-10 files in their published formats -----------------------------------------


def _write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    """IDX: big-endian magic 0x0000 08 NN (uint8, NN dims), one big-endian uint32 per dim, raw bytes."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


def _mnist_folder(root: Path, name: str, n_train: int, n_test: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    arrays["train-images-idx3-ubyte"][0, 0, 0] = 255  # so the scaling's upper end is exercised
    folder = root / name
    folder.mkdir(parents=True)
    for i, (stem, array) in enumerate(arrays.items()):
        _write_idx(folder / stem, array, compress=i % 2 == 1)  # mix plain and .gz files
    return arrays


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_mnist_like_through_the_registry(tmp_path: Path, name: str) -> None:
    arrays = _mnist_folder(tmp_path, name, n_train=12, n_test=5, seed=len(name))
    data = load_data(DataConfig(name=name, root=str(tmp_path)))
    assert data.input_shape == (1, 28, 28)
    assert (len(data.train), len(data.test)) == (12, 5)
    assert data.task == "classification"
    expected = arrays["train-images-idx3-ubyte"][:, None].astype(np.float64) / 255.0
    np.testing.assert_allclose(data.train.inputs.numpy(), expected, rtol=0, atol=1e-7)
    assert float(data.train.inputs.max()) == 1.0
    np.testing.assert_array_equal(data.train.targets.numpy(), arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(data.test.targets.numpy(), arrays["t10k-labels-idx1-ubyte"])


def test_mnist_missing_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "mnist").mkdir()
    _write_idx(tmp_path / "mnist" / "train-labels-idx1-ubyte", np.zeros(3), compress=False)
    with pytest.raises(DataError) as info:
        load_data(DataConfig(name="mnist", root=str(tmp_path)))
    message = str(info.value)
    for stem in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert stem in message
    assert "train-labels-idx1-ubyte" not in message  # present, so not reported
    assert "data.download=true" in message


CIFAR_MEAN = (0.4914, 0.4822, 0.4465)  # the published per-channel statistics of the training set
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def _cifar_batch(path: Path, planes: tuple[int, int, int], labels: list[int]) -> None:
    """A python-version batch: a pickled dict, uint8 rows of 3072 = R plane, G plane, B plane."""
    n = len(labels)
    rows = np.concatenate([np.full((n, 1024), v, dtype=np.uint8) for v in planes], axis=1)
    rows[:, 5] = np.arange(n, dtype=np.uint8)  # red pixel (0, 5) differs per image
    with path.open("wb") as fh:
        # protocol 4 as Python 3.8-3.13 write by default (the real files are Python 2 pickles, which
        # test_datafiles covers); 5 would pickle the array through numpy's _frombuffer instead
        pickle.dump({b"batch_label": b"test", b"data": rows, b"labels": labels}, fh, protocol=4)


def _cifar_root(tmp_path: Path) -> Path:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        _cifar_batch(folder / f"data_batch_{i}", (255, 0, 10 * i), [i, (i + 1) % 10])
    _cifar_batch(folder / "test_batch", (0, 255, 128), [9, 8, 7])
    return tmp_path


def test_cifar10_through_the_registry(tmp_path: Path) -> None:
    data = load_data(DataConfig(name="cifar10", root=str(_cifar_root(tmp_path))))
    assert data.input_shape == (3, 32, 32)
    assert (len(data.train), len(data.test)) == (10, 3)
    assert data.train.targets.tolist() == [1, 2, 2, 3, 3, 4, 4, 5, 5, 6]
    assert data.test.targets.tolist() == [9, 8, 7]

    def normalized(value: float, channel: int) -> float:
        return (value / 255 - CIFAR_MEAN[channel]) / CIFAR_STD[channel]

    x = data.train.inputs
    assert torch.allclose(x[:, 0, 31, 31], torch.tensor(normalized(255, 0)))  # R plane came first
    assert torch.allclose(x[:, 1], torch.tensor(normalized(0, 1)))
    blue = torch.tensor([normalized(10 * i, 2) for i in range(1, 6) for _ in range(2)])
    assert torch.allclose(x[:, 2, 17, 3], blue)  # batch order kept: data_batch_1 … _5
    assert torch.allclose(x[:, 0, 0, 5], torch.tensor([normalized(j, 0) for _ in range(5) for j in range(2)]))
    assert torch.allclose(data.test.inputs[:, 2], torch.tensor(normalized(128, 2)))


def test_cifar10_missing_batch_is_named(tmp_path: Path) -> None:
    root = _cifar_root(tmp_path)
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError) as info:
        load_data(DataConfig(name="cifar10", root=str(root)))
    assert "data_batch_3" in str(info.value)
    assert "data_batch_2" not in str(info.value)
