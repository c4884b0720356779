"""Built-in tasks. Each module holds its data generator, its argument schema and its probes."""

from pathdep.registry import TASKS
from pathdep.tasks import digits, features
from pathdep.tasks import mnist1d
from pathdep.tasks import modular
from pathdep.tasks import bandit
from pathdep.tasks import finetune, induction, text
from pathdep.tasks.base import Split, Task

TASKS.register("two_features", features.TwoFeaturesArgs, features.build, features.__doc__.splitlines()[0])
TASKS.register("digits", digits.DigitsArgs, digits.build, digits.__doc__.splitlines()[0])
TASKS.register("mnist1d", mnist1d.MNIST1DArgs, mnist1d.build, mnist1d.__doc__.splitlines()[0])
TASKS.register("modular", modular.ModularArgs, modular.build, modular.__doc__.splitlines()[0])
TASKS.register("bandit", bandit.BanditArgs, bandit.build, bandit.__doc__.splitlines()[0])
TASKS.register("induction", induction.InductionArgs, induction.build, induction.__doc__.splitlines()[0])
TASKS.register("char_lm", text.TextArgs, text.build, text.__doc__.splitlines()[0])
TASKS.register("finetune_code", finetune.FinetuneArgs, finetune.build, finetune.__doc__.splitlines()[0])

__all__ = ["Split", "Task", "TASKS"]
