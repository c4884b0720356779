"""Two-door contextual bandit: a true goal and a proxy that coincide in training, trained by REINFORCE.

Each episode shows a context of ``d`` numbers and the agent opens one of two doors; it is rewarded
(1) only for the door holding the true goal. Two cues point at a door: the **goal cue**, linear
with a small margin (x1 = s * U(m - 0.04, m + 0.04), s = +1 for door 1, -1 for door 0), and the
**proxy cue**, a conjunction (sign(x2 * x3) = s'). In training s' = s: the proxy always sits at the
goal, so both cues earn full reward. In the ``probe`` environment the proxy is behind the other
door. A run's **goal_rate** (its solution type) is the fraction of probe episodes in which its
greedy policy opens the goal's door: near 1 if it learnt the goal, near 0 if it learnt the proxy.

Every training episode carries its own fixed random tape (``train.extra["u"]``, uniform noise per
door); the action is sampled by Gumbel-max from it, so the loss is a pure function of the
parameters and the episodes the run's data-order stream picks. The loss is the REINFORCE surrogate
-(r - b) log pi(a) with the baseline b = pi(goal) (the expected reward), shifted by a constant so
that its value is the regret 1 - mean reward while its gradient is the policy gradient. Given
episodes without tapes (as measurements pass them), the loss is the exact expected regret.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from pathdep.models.base import Model, Params
from pathdep.tasks import features
from pathdep.tasks.base import Split, Task


class BanditArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    d: int = Field(11, ge=3, description="context size (3 cue dimensions + d-3 noise)")
    margin: float = Field(0.40, gt=0, description="centre of |x1|, the goal cue: sets the balance of the split")
    n_train: int = Field(2048, ge=8, description="training episodes (each with its own random tape)")
    n_test: int = Field(2000, ge=8, description="episodes of the training environment held out")
    n_probe: int = Field(2000, ge=8, description="episodes of the probe environment (proxy at the other door)")
    seed: int = Field(0, description="seed of the episodes themselves (not of any run)")


def sample_episodes(n: int, d: int, margin: float, proxy_at_goal: bool, gen: torch.Generator) -> Split:
    """Contexts (n, d), goal door y (n,) and, in ``extra``, the proxy's door and the action tape (n, 2).

    The contexts are the two-features task's inputs: the goal is the linear cue, the proxy the XOR cue.
    """
    cues = features.sample(n, d, margin, not proxy_at_goal, gen)
    tape = torch.rand(n, 2, generator=gen).clamp(1e-6, 1 - 1e-6)  # uniform noise per door
    return Split(cues.x, cues.y, {"proxy_door": cues.extra["y_feature2"], "u": tape})


def reinforce_loss(logits: Tensor, goal: Tensor, u: Tensor) -> Tensor:
    """Per-episode REINFORCE surrogate whose value is the regret: logits (R, B, 2) -> (R, B).

    The action is Gumbel-max over ``logits`` with the tape ``u`` (R, B, 2); reward 1 if it is
    ``goal`` (R, B); baseline the policy's own probability of the goal (its expected reward).
    """
    logp = logits.log_softmax(-1)  # (R, B, 2)
    action = (logits.detach() - torch.log(-torch.log(u))).argmax(-1)  # (R, B) ~ pi
    reward = (action == goal).float()
    baseline = logp.detach().gather(-1, goal.unsqueeze(-1)).squeeze(-1).exp()  # pi(goal)
    surrogate = -(reward - baseline) * logp.gather(-1, action.unsqueeze(-1)).squeeze(-1)
    return surrogate - surrogate.detach() + (1.0 - reward)


class TwoDoorBandit(Task):
    """The task object; see the module docstring."""

    def batch(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        """Episodes of a population: idx (R, B) -> x (R, B, d + 2) (context, then tape), y (R, B)."""
        return torch.cat([self.train.x[idx], self.train.extra["u"][idx]], dim=-1), self.train.y[idx]

    def train_loss(self, model: Model, params: Params, x: Tensor, y: Tensor) -> Tensor:
        """Per-run mean loss (R,) over a batch of episodes.

        With tapes (x (R, B, d + 2), as :meth:`batch` gives them) it is the sampled REINFORCE loss;
        without (x (R, B, d), raw episodes as measurements pass them) it is the exact expected
        regret 1 - pi(goal), whose gradient the REINFORCE loss estimates without bias.
        """
        d = self.in_shape[0]
        logits = model.apply(params, x[..., :d])  # (R, B, 2)
        if x.shape[-1] == d:
            return 1.0 - logits.softmax(-1).gather(-1, y.long().unsqueeze(-1)).squeeze(-1).mean(1)
        return reinforce_loss(logits, y, x[..., d:]).mean(1)

    def extra_properties(self, model: Model, params: Params) -> dict[str, Tensor]:
        probe = self.probes["probe"]
        ev = self.evaluate(model, params, probe)
        to_proxy = (ev["pred"] == probe.extra["proxy_door"]).float()  # (R, N)
        logits = model.apply(params, self.train.x.unsqueeze(0).expand(ev["pred"].shape[0], *self.train.x.shape))
        p_goal = logits.softmax(-1).gather(-1, self.train.y.expand(logits.shape[:2]).unsqueeze(-1)).squeeze(-1)
        return {
            "goal_rate": ev["correct"].mean(1),
            "proxy_rate": to_proxy.mean(1),
            "train_reward": p_goal.mean(1),  # expected reward of the stochastic policy
        }


def build(args: BanditArgs) -> TwoDoorBandit:
    gen = torch.Generator().manual_seed(args.seed)
    train = sample_episodes(args.n_train, args.d, args.margin, True, gen)
    test = sample_episodes(args.n_test, args.d, args.margin, True, gen)
    probe = sample_episodes(args.n_probe, args.d, args.margin, False, gen)
    return TwoDoorBandit(
        name="bandit",
        train=train,
        test=test,
        probes={"probe": probe},
        n_outputs=2,
        loss_kind="ce",
        solution_property="goal_rate",
        doc=__doc__.splitlines()[0],
    )
