"""Record runs trained with Hugging Face ``transformers.Trainer`` or Lightning into a pathdep store.

Each callback writes through a :class:`~pathdep.sources.Recorder`: the run's parameters at the
start of training, every ``every`` optimiser steps (and whenever the trainer saves a checkpoint
of its own) and at the end; its seeds in the run's record; and every training loss the trainer
reports in the run's training log (``study.train_log(run)``), at the step whose parameters
computed it (the step before the update, as in pathdep's own log).

.. code-block:: python

    from pathdep.sources import Recorder
    from pathdep.sources.callbacks import HFCallback, LightningCallback

    rec = Recorder("runs/", "mine", task="two_features", model="mlp", model_args={"hidden": [8]}, keys="order")
    transformers.Trainer(model, args, train_dataset=data, callbacks=[HFCallback(rec, "seed0", every=100)]).train()
    lightning.pytorch.Trainer(max_steps=1000, callbacks=[LightningCallback(rec, "seed1", every=100, module="net")]).fit(lit)

The HF callback takes its seeds from ``TrainingArguments`` (``seed``; ``data_seed``, else ``seed``)
unless given; the Lightning callback from ``lightning.seed_everything`` (``PL_GLOBAL_SEED``)
unless given. ``module`` names the submodule whose parameters are the recorded model (default:
the whole model the trainer holds). The classes need their library: importing this module does
not, each is built on first use.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from torch import Tensor, nn

from pathdep.errors import PathdepError
from pathdep.sources.recorder import Recorder


class Recording:
    """What both callbacks do, independent of the trainer: which steps to save, and saving them."""

    def __init__(self, recorder: Recorder, run: str, every: int | None, module: str | None,
                 init_seed: int | None, data_seed: int | None) -> None:
        if every is not None and every < 1:
            raise PathdepError(f"The 'every' parameter of the pathdep callback must be an int >= 1 or None. Got {every!r} instead.")
        self.recorder, self.run, self.every, self.module = recorder, run, every, module
        self.init_seed, self.data_seed = init_seed, data_seed
        self.saved: set[int] = set()

    def due(self, step: int) -> bool:
        return self.every is not None and step % self.every == 0

    def save(self, step: int, model: nn.Module) -> None:
        """Write ``model``'s parameters at ``step`` (once per step)."""
        if step in self.saved:
            return
        net = model.get_submodule(self.module) if self.module else model
        self.recorder.save(self.run, step, net, init_seed=self.init_seed, data_seed=self.data_seed)
        self.saved.add(step)

    def log(self, step: int, loss: Any) -> None:
        """The training loss computed from the parameters at ``step``."""
        value = float(loss.detach()) if isinstance(loss, Tensor) else float(loss)
        self.recorder.log_loss(self.run, {step: value})


@cache
def _hf_class() -> type:
    from transformers import TrainerCallback

    class HFCallback(TrainerCallback):
        """A ``transformers.TrainerCallback`` that records the run into a pathdep store (module docstring)."""

        def __init__(self, recorder: Recorder, run: str, *, every: int | None = None, module: str | None = None,
                     init_seed: int | None = None, data_seed: int | None = None) -> None:
            self.rec = Recording(recorder, run, every, module, init_seed, data_seed)

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            rec = self.rec
            if rec.init_seed is None:
                rec.init_seed = args.seed
            if rec.data_seed is None:
                rec.data_seed = args.data_seed if args.data_seed is not None else args.seed
            rec.save(state.global_step, model)

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if self.rec.due(state.global_step):
                self.rec.save(state.global_step, model)

        def on_save(self, args, state, control, model=None, **kwargs):
            self.rec.save(state.global_step, model)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:  # the mean loss since the last log, whose last batch came from step - 1
                self.rec.log(state.global_step - 1, logs["loss"])

        def on_train_end(self, args, state, control, model=None, **kwargs):
            self.rec.save(state.global_step, model)

    return HFCallback


@cache
def _lightning_class() -> type:
    from lightning.pytorch import Callback

    class LightningCallback(Callback):
        """A ``lightning.pytorch.Callback`` that records the run into a pathdep store (module docstring)."""

        def __init__(self, recorder: Recorder, run: str, *, every: int | None = None, module: str | None = None,
                     init_seed: int | None = None, data_seed: int | None = None) -> None:
            self.rec = Recording(recorder, run, every, module, init_seed, data_seed)

        def on_train_start(self, trainer, pl_module):
            seed = os.environ.get("PL_GLOBAL_SEED")  # what lightning.seed_everything set
            if self.rec.init_seed is None and seed is not None:
                self.rec.init_seed = int(seed)
            if self.rec.data_seed is None and seed is not None:
                self.rec.data_seed = int(seed)
            self.rec.save(trainer.global_step, pl_module)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            if loss is not None:  # computed from the parameters before this step's update
                self.rec.log(trainer.global_step - 1, loss)
            if self.rec.due(trainer.global_step):
                self.rec.save(trainer.global_step, pl_module)

        def on_save_checkpoint(self, trainer, pl_module, checkpoint):
            self.rec.save(trainer.global_step, pl_module)

        def on_train_end(self, trainer, pl_module):
            self.rec.save(trainer.global_step, pl_module)

    return LightningCallback


_BUILDERS = {"HFCallback": _hf_class, "LightningCallback": _lightning_class}


def __getattr__(name: str) -> type:
    if name in _BUILDERS:
        return _BUILDERS[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["HFCallback", "LightningCallback", "Recording"]
