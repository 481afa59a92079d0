"""A Lightning callback: the optimizer's path recorded during ``fit``, its landscape at the end.

Needs the ``lightning`` extra (``lightning.pytorch``)::

    from landscape.integrations.lightning import LandscapeCallback
    trainer = Trainer(max_epochs=10, callbacks=[LandscapeCallback("runs/path", surface_at_end=True)])

During ``fit`` a :class:`landscape.Recorder` writes the LightningModule's weights into ``out_dir``
(at the start of training, then every ``every_n_epochs`` epochs, and the final ones), each at the trainer's
global step: a run folder that ``landscape trajectory out_dir`` reads. With ``surface_at_end``
the callback then computes the path's PCA plane, the loss surface of the final model over it,
and logs the figures to every logger of the trainer (:func:`landscape.log_figures`).

Under DDP only global rank 0 writes checkpoints and computes the surface (alone, on the
``data`` given, or on its own shard of the train dataloader); the other ranks wait for it at
a barrier.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from landscape.errors import ConfigError, LandscapeError, MissingExtraError, install_hint
from landscape.integrations._end import (
    EndResult,
    GridSpec,
    check_grid,
    open_recorder,
    trajectory_and_surface,
)
from landscape.io.recorder import Recorder

try:
    import lightning.pytorch as pl
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError(f"landscape.integrations.lightning needs Lightning: {install_hint('lightning')}") from err


def _train_loss(trainer: pl.Trainer) -> float | None:
    value = trainer.callback_metrics.get("train_loss", trainer.callback_metrics.get("loss"))
    return None if value is None else float(value)


class LandscapeCallback(pl.Callback):
    """Record the weights during ``fit``; at the end, optionally, the trajectory and a surface, logged.

    Args:
        out_dir: the run folder (``run.json``, ``checkpoints/``; at the end ``trajectory.h5``,
            ``surface.h5`` and ``figures/*.png``). A folder already holding a run is refused.
        every_n_epochs: record every this many epochs (the initial and final weights always).
        surface_at_end: after ``fit``, compute the trajectory and the loss surface over its plane
            and log their figures to the trainer's loggers.
        grid: points per axis of a square grid holding the whole path (an int ≥ 3), or an
            ``(x, y)`` pair of axes as :func:`landscape.surface` takes them.
        data: what the surface is evaluated on (anything :func:`landscape.surface` takes);
            None: the trainer's train dataloader.
        loss: as for :func:`landscape.surface`: a registry name, a criterion called as
            ``loss(module(inputs), targets)``, or ``loss(module, batch)``.
        progress: show the surface's progress bar.
        resume: append to the run already recorded in ``out_dir`` (a resumed training, e.g. from a
            checkpoint); without it a folder that holds a run is refused.

    After ``fit``: ``result`` (an ``EndResult``: ``trajectory``, ``surface``, ``figures`` name → PNG
    path) when ``surface_at_end`` ran on this rank, else None; ``recorder`` the Recorder (rank 0).
    """

    def __init__(self, out_dir: str | Path, every_n_epochs: int = 1, surface_at_end: bool = False, *,
                 grid: GridSpec = 21, data: Any = None, loss: Any = "cross_entropy", progress: bool = True,
                 resume: bool = False) -> None:
        super().__init__()
        self.out_dir = Path(out_dir)
        if isinstance(every_n_epochs, bool) or not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ConfigError(f"every_n_epochs must be a positive int, got {every_n_epochs!r}")
        self.every_n_epochs = every_n_epochs
        self.surface_at_end = bool(surface_at_end)
        self.grid = check_grid(grid)
        self.data, self.loss, self.progress = data, loss, progress
        self.resume = bool(resume)
        self.recorder: Recorder | None = None
        self.result: EndResult | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # after a resume restored the step
        if trainer.is_global_zero:
            self.recorder = open_recorder(self.out_dir, self.resume, trainer.global_step)
            self.recorder.save(pl_module, epoch=trainer.current_epoch, step=trainer.global_step)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epochs_done = trainer.current_epoch + 1
        if self.recorder is not None and epochs_done % self.every_n_epochs == 0:
            self.recorder.save(pl_module, loss=_train_loss(trainer), epoch=epochs_done, step=trainer.global_step)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        failed: LandscapeError | None = None
        if self.recorder is not None:
            if self.recorder.count != trainer.global_step:
                self.recorder.save(pl_module, loss=_train_loss(trainer), epoch=trainer.current_epoch, step=trainer.global_step)
            self.recorder.finish(pl_module)
            if self.surface_at_end:
                try:
                    self.result = self._surface(trainer, pl_module)
                    self._log(trainer)
                except LandscapeError as err:  # raised after the barrier: the other ranks must not hang
                    failed = err
        if self.surface_at_end:
            trainer.strategy.barrier("landscape-surface")  # the other ranks wait for rank 0's surface
        if failed is not None:
            raise failed

    def _log(self, trainer: pl.Trainer) -> None:
        from landscape.integrations.logging import log_figures

        for logger in trainer.loggers:
            log_figures(self.out_dir, logger, step=trainer.global_step)

    def _surface(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> EndResult:
        data = self.data if self.data is not None else trainer.train_dataloader
        attached = pl_module._trainer
        pl_module.trainer = None  # type: ignore[assignment]  # the surface's private copy must not deep-copy the trainer
        try:
            return trajectory_and_surface(self.out_dir, pl_module, data, self.loss, self.grid, progress=self.progress)
        finally:
            pl_module.trainer = attached  # type: ignore[assignment]
