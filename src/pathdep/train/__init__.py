"""Training populations of runs: the engine, optimizers on stacked params, seeded streams."""

from pathdep.train.engine import RunState, fresh_state, train_population

__all__ = ["RunState", "fresh_state", "train_population"]
