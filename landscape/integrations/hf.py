"""A Hugging Face ``Trainer`` callback: the path recorded at each save, its landscape at the end.

Needs the ``hf`` extra (``transformers``; the Trainer itself needs ``accelerate``)::

    from landscape.integrations.hf import LandscapeCallback
    trainer = Trainer(model, args, train_dataset=ds, callbacks=[LandscapeCallback(surface_at_end=True)])

A :class:`landscape.Recorder` writes the model's weights into ``out_dir`` (default
``<output_dir>/landscape``) when training begins, at every save of the Trainer (``on_save``:
``save_steps`` / ``save_strategy``), and when it ends, each at the Trainer's global step: a run
folder for ``landscape trajectory``, kept whatever ``save_total_limit`` deletes. (The Trainer's own
``checkpoint-N/`` folders are read too: ``landscape trajectory <output_dir>``.)

With ``surface_at_end``, ``on_train_end`` computes the path's PCA plane and the loss surface of
the final model over it, on ``data`` or the Trainer's train dataloader, with ``loss`` or the model's
own loss (``model(**batch).loss``), and logs the figures through the Trainer's reporting
integrations (``report_to``): ``tensorboard`` into ``$TENSORBOARD_LOGGING_DIR`` when set, else
``<output_dir>/runs/landscape`` (beside the Trainer's own ``runs/<date>_<host>``: one
``tensorboard --logdir <output_dir>/runs`` shows both); ``wandb`` into the active run. Only the
main process (``state.is_world_process_zero``) writes and computes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from landscape.errors import MissingExtraError, install_hint
from landscape.integrations._end import EndResult, GridSpec, check_grid, open_recorder, trajectory_and_surface
from landscape.io.recorder import Recorder
from landscape.zoo.modules import plain_module

try:
    from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError(f"landscape.integrations.hf needs transformers: {install_hint('hf')}") from err


def model_loss(model: nn.Module, batch: Any) -> Tensor:
    """The loss a Hugging Face model computes itself from a batch that holds ``labels``."""
    return model(**batch).loss  # type: ignore[no-any-return]


class LandscapeCallback(TrainerCallback):  # type: ignore[misc]
    """Record the weights at every save; at the end, optionally, the trajectory and a surface, logged.

    Args:
        out_dir: the run folder (``run.json``, ``checkpoints/``; at the end ``trajectory.h5``,
            ``surface.h5``, ``figures/*.png``); None: ``<output_dir>/landscape``. A folder already
            holding a run is refused.
        surface_at_end: at ``on_train_end``, compute the trajectory and the loss surface over its
            plane and log their figures through the Trainer's ``report_to`` integrations.
        grid: points per axis of a square grid holding the whole path (an int ≥ 3), or an
            ``(x, y)`` pair of axes as :func:`landscape.surface` takes them.
        data: what the surface is evaluated on (anything :func:`landscape.surface` takes);
            None: the Trainer's train dataloader.
        loss: as for :func:`landscape.surface`; None: the model's own loss, ``model(**batch).loss``.
        progress: show the surface's progress bar.
        resume: append to the run already recorded in ``out_dir`` (a resumed training, e.g. from a
            checkpoint); without it a folder that holds a run is refused.

    After training: ``result`` (``trajectory``, ``surface``, ``figures`` name → PNG path) when the
    surface was computed in this process, else None; ``recorder`` the Recorder (main process).
    """

    def __init__(self, out_dir: str | Path | None = None, surface_at_end: bool = False, *, grid: GridSpec = 21,
                 data: Any = None, loss: Any = None, progress: bool = True, resume: bool = False) -> None:
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.surface_at_end = bool(surface_at_end)
        self.grid = check_grid(grid)
        self.data, self.loss, self.progress = data, loss, progress
        self.resume = bool(resume)
        self.recorder: Recorder | None = None
        self.result: EndResult | None = None

    def _save(self, state: TrainerState, model: nn.Module) -> None:
        if self.recorder is not None:
            # the Trainer's epoch is fractional between epochs: kept as a metric, the points labelled by their order
            progress = {"train_epoch": float(state.epoch)} if state.epoch is not None else {}
            losses = [e["loss"] for e in state.log_history if isinstance(e.get("loss"), int | float)]  # the last logged
            self.recorder.save(plain_module(model), loss=float(losses[-1]) if losses else None, metrics=progress,
                               step=state.global_step)

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       model: nn.Module | None = None, **kwargs: Any) -> None:
        if state.is_world_process_zero and model is not None:
            self.out_dir = self.out_dir if self.out_dir is not None else Path(str(args.output_dir)) / "landscape"
            self.recorder = open_recorder(self.out_dir, self.resume, state.global_step)
            self._save(state, model)

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                model: nn.Module | None = None, **kwargs: Any) -> None:
        if model is not None:
            self._save(state, model)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     model: nn.Module | None = None, train_dataloader: Any = None, **kwargs: Any) -> None:
        if self.recorder is None or model is None or self.out_dir is None:
            return
        model = plain_module(model)
        if self.recorder.count != state.global_step:
            self._save(state, model)
        self.recorder.finish(model)
        if not self.surface_at_end:
            return
        data = self.data if self.data is not None else train_dataloader
        self.result = trajectory_and_surface(self.out_dir, model, data, self.loss if self.loss is not None else model_loss,
                                             self.grid, progress=self.progress)
        self._log(args, state)

    def _log(self, args: TrainingArguments, state: TrainerState) -> None:
        from landscape.integrations.logging import log_figures

        targets = [args.report_to] if isinstance(args.report_to, str) else list(args.report_to or [])
        if "tensorboard" in targets:
            from torch.utils.tensorboard import SummaryWriter

            log_dir = os.environ.get("TENSORBOARD_LOGGING_DIR") or str(Path(str(args.output_dir)) / "runs" / "landscape")
            writer = SummaryWriter(log_dir=log_dir)
            try:
                log_figures(self.out_dir, writer, step=state.global_step)
            finally:
                writer.close()
        if "wandb" in targets:
            import wandb

            if wandb.run is not None:
                log_figures(self.out_dir, wandb.run, step=state.global_step)
