"""Model soups (Wortsman et al., 2022): averages of the weights of several checkpoints.

- **uniform**: the mean of all ingredients;
- **greedy**: ingredients sorted by held-out accuracy (best first); starting from the best one,
  each next ingredient is kept if the soup with it has held-out accuracy no lower than without.
  By construction the greedy soup is never worse on the held-out split than its best ingredient.

Ingredients are the members of one population (any checkpoints of one architecture). The
held-out accuracies of all ingredients are one population pass; the greedy additions are
sequential by definition (each decision depends on the previous soup).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pathdep.errors import PathdepError
from pathdep.measure.population import size, take
from pathdep.models.base import Model, Params
from pathdep.tasks.base import Split, Task


def uniform_soup(params: Params) -> Params:
    """Mean of every member's weights: (R, ...) -> (1, ...).

    >>> uniform_soup({"w": torch.tensor([[1.0, 2.0], [3.0, 4.0]])})
    {'w': tensor([[2., 3.]])}
    """
    return {k: v.double().mean(0, keepdim=True).to(v.dtype) for k, v in params.items()}


def _accuracy(task: Task, model: Model, params: Params, split: Split) -> Tensor:
    with torch.no_grad():
        return task.evaluate(model, params, split)["correct"].double().mean(1)  # (R,)


@dataclass(frozen=True)
class GreedySoup:
    """A greedy soup: its weights (1, ...), the ingredients kept (indices, in the order added),
    the order tried, and held-out accuracy of every ingredient and of the soup."""

    params: Params
    members: tuple[int, ...]
    order: tuple[int, ...]
    ingredient_acc: Tensor  # (R,)
    held_out_acc: float


def greedy_soup(task: Task, model: Model, params: Params, held_out: Split) -> GreedySoup:
    """Greedy soup of the members of ``params`` selected on ``held_out``.

    >>> from pathdep.models.mlp import MLP
    >>> from pathdep.tasks.base import Split, Task
    >>> x = torch.randn(20, 3); y = (x[:, 0] > 0).float()
    >>> t = Task("toy", Split(x, y), Split(x, y), {}, 1, "bce")
    >>> m = MLP(d_in=3, hidden=(4,), d_out=1)
    >>> soup = greedy_soup(t, m, m.init_population([0, 1, 2]), t.test)
    >>> soup.held_out_acc >= float(soup.ingredient_acc.max())
    True
    """
    if size(params) < 1:
        raise PathdepError("A soup needs at least one ingredient. Got none.")
    acc = _accuracy(task, model, params, held_out)
    order = [int(i) for i in torch.argsort(acc, descending=True, stable=True)]
    members = [order[0]]
    best = float(acc[order[0]])
    for cand in order[1:]:
        trial = uniform_soup(take(params, torch.tensor(members + [cand])))
        trial_acc = float(_accuracy(task, model, trial, held_out)[0])
        if trial_acc >= best:
            members.append(cand)
            best = trial_acc
    soup = uniform_soup(take(params, torch.tensor(members)))
    return GreedySoup(soup, tuple(members), tuple(order), acc, best)
