"""Two competing features: the demo task whose seeds split into two solution types.

Label y in {0, 1}, s = 2y - 1. Feature 1 is linear with a small margin (x1 = s * U(m - 0.04, m + 0.04));
feature 2 is an XOR (sign(x2 * x3) = s). The remaining dimensions are N(0, 1) noise. Both features
predict the label perfectly on train and test. The ``ood`` probe flips the XOR sign, so the two
features disagree on every probe example; a run's **reliance** is the fraction of its ``ood``
predictions that follow feature 1: near 1 for the linear solution, near 0 for the XOR solution.

The default model (a width-1 linear bottleneck at the input) can carry only one of the two.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from pathdep.models.base import Model, Params
from pathdep.tasks.base import Split, Task


class TwoFeaturesArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    d: int = Field(11, ge=3, description="input dimension (3 signal + d-3 noise)")
    margin: float = Field(0.40, gt=0, description="centre of |x1|: sets the balance of the split")
    n_train: int = Field(1024, ge=8)
    n_test: int = Field(2000, ge=8)
    n_probe: int = Field(2000, ge=8)
    seed: int = Field(0, description="seed of the data itself (not of any run)")


def sample(n: int, d: int, margin: float, flip_xor: bool, gen: torch.Generator) -> Split:
    """Inputs (n, d), feature 1's label y (n,) and, in ``extra``, feature 2's label ``y_feature2``."""
    y = torch.randint(0, 2, (n,), generator=gen)
    s = 2.0 * y - 1
    u = lambda lo, hi: torch.empty(n).uniform_(lo, hi, generator=gen)  # noqa: E731
    x = torch.randn(n, d, generator=gen)
    x[:, 0] = s * u(margin - 0.04, margin + 0.04)
    a = torch.randint(0, 2, (n,), generator=gen) * 2.0 - 1
    xor_sign = -s if flip_xor else s
    x[:, 1] = a * u(0.9, 1.1)
    x[:, 2] = a * xor_sign * u(0.9, 1.1)
    y_f2 = ((xor_sign + 1) / 2).long()  # what feature 2 says
    return Split(x, y, {"y_feature2": y_f2})


class TwoFeatures(Task):
    """The task object; see the module docstring."""

    intervention_kinds = ("counterexamples_f1", "counterexamples_f2", "label_flip")

    def extra_properties(self, model: Model, params: Params) -> dict[str, Tensor]:
        ev = self.evaluate(model, params, self.probes["ood"])
        follows_f1 = ev["correct"]  # ood labels are feature 1's
        return {"reliance": follows_f1.mean(1)}

    def intervene(self, kind: str, x: Tensor, y: Tensor, strength: float, u: Tensor):
        """Change a fraction ``strength`` of each run's batch: x (R, B, d), y (R, B), u (R, B) uniform.

        ``counterexamples_f1``: the chosen examples get their XOR sign flipped, so the features
        disagree and the label follows feature 1 (pushes toward the linear solution);
        ``counterexamples_f2``: the same, but the label follows feature 2 (toward XOR);
        ``label_flip``: the chosen examples' labels are flipped.
        """
        chosen = u < strength  # (R, B)
        x, y = x.clone(), y.clone()
        if kind == "label_flip":
            y[chosen] = 1 - y[chosen]
            return x, y
        x[..., 2] = torch.where(chosen, -x[..., 2], x[..., 2])
        if kind == "counterexamples_f2":
            y[chosen] = 1 - y[chosen]
        return x, y


def build(args: TwoFeaturesArgs) -> TwoFeatures:
    gen = torch.Generator().manual_seed(args.seed)
    train = sample(args.n_train, args.d, args.margin, False, gen)
    test = sample(args.n_test, args.d, args.margin, False, gen)
    ood = sample(args.n_probe, args.d, args.margin, True, gen)
    return TwoFeatures(
        name="two_features",
        train=Split(train.x, train.y.float()),
        test=Split(test.x, test.y.float()),
        probes={"ood": Split(ood.x, ood.y.float(), ood.extra)},
        n_outputs=1,
        loss_kind="bce",
        solution_property="reliance",
        solution_ends=("the XOR solution", "the linear solution"),
        doc=__doc__.splitlines()[0],
    )
