"""Shared fixtures: small seeded configs, one tiny finished training run, user-file writers.

What runs where: plain ``pytest`` is the default suite, every test not marked ``slow`` (the
``-m 'not slow'`` in pyproject's addopts), all on the CPU; ``pytest -m slow`` runs the long
crash tests (20 kills each in test_reliability.py, the killed torchrun rank in
test_distributed.py); test_gpu.py skips without CUDA. ``.ci/run`` runs the default suite and then
the slow tests, and prints how long each took. pytest-timeout stops any single test after 300 s
(900 s for the slow tests in .ci/run: on a busy 2-core machine each 20-kill test took 360-420 s).
Progress bars are silenced for the whole session through ``LANDSCAPE_QUIET`` (the variable
:func:`landscape.engine.progress.bar` honours).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from landscape import testhooks
from landscape.config import Config, DataConfig, ModelConfig, TrainConfig
from landscape.workflows.train import RunResult, train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _quiet_progress_bars() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LANDSCAPE_QUIET", "1")
        yield


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine two spinning
    OpenMP threads make training 5-10x slower (digits_cnn: ~5 s with one thread, up to 60 s with two)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def flush_every_call(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The test hook ``LANDSCAPE_FLUSH_SECONDS=0`` in this process: surface files flush after every evaluation call."""
    monkeypatch.setenv(testhooks.FLUSH_ENV, "0")
    testhooks.reread()  # the hooks are read once per process: forget what was read before
    yield
    testhooks.reread()  # (monkeypatch restores the variable after this)


def small_config(**train: Any) -> Config:
    """digits + a one-hidden-layer MLP (width 32), plain SGD; ``train`` overrides [train] keys."""
    settings: dict[str, Any] = {"epochs": 2, "batch_size": 64, "lr": 0.1, "momentum": 0.9, "seed": 0}
    settings.update(train)
    return Config(
        data=DataConfig(name="digits"),
        model=ModelConfig(name="mlp", options={"hidden": [32]}),
        train=TrainConfig(**settings),
    )


@pytest.fixture
def make_config() -> Callable[..., Config]:
    """A factory: ``make_config(epochs=3, data=DataConfig(max_train=200))``.

    Keyword ``data`` / ``model`` replace whole sections; every other keyword is a [train] key.
    """

    def factory(data: DataConfig | None = None, model: ModelConfig | None = None, **train: Any) -> Config:
        config = small_config(**train)
        if data is not None:
            config = replace(config, data=data)
        if model is not None:
            config = replace(config, model=model)
        return config

    return factory


@pytest.fixture(scope="session")
def tiny_config() -> Config:
    return small_config()


@pytest.fixture(scope="session")
def tiny_run(tiny_config: Config, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """digits + MLP trained for 2 epochs, once per session. Treat the folder as read-only."""
    return train(tiny_config, tmp_path_factory.mktemp("tiny_run"))


@pytest.fixture
def write_py(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a dedented Python source file into ``tmp_path`` and return its path."""

    def write(name: str, source: str) -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        return path

    return write
