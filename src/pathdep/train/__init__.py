"""Training populations of runs: the engine, optimizers on stacked params, seeded streams."""

from pathdep.train.engine import RunState, fresh_state, train_population
from pathdep.train.executors import RayExecutor, local_executor

__all__ = ["RayExecutor", "local_executor", "RunState", "fresh_state", "train_population"]
