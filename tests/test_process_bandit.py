"""The two-door bandit: episodes as specified, an unbiased policy gradient, and seeds that split between goal and proxy."""

import pytest
import torch

from pathdep import Study
from pathdep.tasks import TASKS
from pathdep.tasks.bandit import BanditArgs, build, reinforce_loss
from tests.helpers import properties_at


def test_episodes_put_the_proxy_at_the_goal_in_training_and_away_in_the_probe():
    task = build(BanditArgs(n_train=500, n_test=100, n_probe=300))
    for split, same in ((task.train, True), (task.test, True), (task.probes["probe"], False)):
        goal_sign = (split.x[:, 0] > 0).long()
        proxy_sign = (split.x[:, 1] * split.x[:, 2] > 0).long()
        assert torch.equal(goal_sign, split.y)
        assert torch.equal(proxy_sign, split.extra["proxy_door"])
        assert torch.equal(split.extra["proxy_door"] == split.y, torch.full_like(split.y, same, dtype=torch.bool))
    assert task.in_shape == (11,)
    x, y = task.batch(torch.tensor([[3, 4], [4, 0]]))
    assert x.shape == (2, 2, 13) and torch.equal(x[0, 1, 11:], task.train.extra["u"][4]) and torch.equal(y[1], task.train.y[[4, 0]])
    assert "bandit" in TASKS.names()


def test_reinforce_loss_is_the_regret_and_its_gradient_the_policy_gradient():
    gen = torch.Generator().manual_seed(0)
    n = 200_000
    logits = torch.tensor([0.3, -0.5]).expand(1, n, 2).clone().requires_grad_(True)  # one state, many tapes
    goal = torch.ones(1, n, dtype=torch.long)
    u = torch.rand(1, n, 2, generator=gen)
    loss = reinforce_loss(logits, goal, u)
    pi = torch.softmax(torch.tensor([0.3, -0.5]), 0)
    # Gumbel-max samples the softmax: the regret is 1 - pi(goal) on average
    assert loss.mean().item() == pytest.approx(1 - pi[1].item(), abs=0.005)
    # the gradient of -E[reward] = -pi(goal) w.r.t. the logits is pi0*pi1 * [1, -1]
    (grad,) = torch.autograd.grad(loss.mean(), logits)
    expected = pi[0] * pi[1] * torch.tensor([1.0, -1.0])
    torch.testing.assert_close(grad.sum(1)[0], expected, atol=0.004, rtol=0)


def test_without_tapes_the_training_loss_is_the_exact_expected_regret():
    from pathdep.models import MLP

    task = build(BanditArgs(n_train=64))
    model = MLP(d_in=11, hidden=(1, 8), d_out=2, activations=("identity", "relu"))
    params = model.init_population([0, 1])
    x, y = task.train.x.expand(2, 64, 11), task.train.y.expand(2, 64)
    pi_goal = model.apply(params, x).softmax(-1).gather(-1, y.unsqueeze(-1)).squeeze(-1)  # (R, B)
    torch.testing.assert_close(task.train_loss(model, params, x, y), 1 - pi_goal.mean(1))
    # with tapes: the sampled regret of the Gumbel-max actions
    xt, yt = task.batch(torch.arange(64).expand(2, 64))
    logits = model.apply(params, xt[..., :11])
    action = (logits - torch.log(-torch.log(xt[..., 11:]))).argmax(-1)
    torch.testing.assert_close(task.train_loss(model, params, xt, yt), 1 - (action == yt).float().mean(1))


@pytest.mark.slow
def test_seeds_split_between_the_goal_and_the_proxy(tmp_path):
    study = Study.from_dict(
        {
            "name": "tiny_bandit",
            "process": {
                "task": "bandit",
                "task_args": {"n_train": 1024, "n_test": 500, "n_probe": 500},
                "model": "mlp",
                "model_args": {"hidden": [1, 32], "activations": ["identity", "relu"]},
                "steps": 400,
                "batch_size": 64,
                "optimizer": {"name": "adam", "lr": 3e-3},
            },
            "seeds": {"init": 16},
        },
        store=tmp_path,
    )
    study.run()
    start, end = properties_at(study, 0), properties_at(study, 400)
    assert (start["train_reward"] - 0.5).abs().max() < 0.1  # an untrained policy is near a coin flip
    assert end["train_reward"].median() > 0.9
    goal = end["goal_rate"]
    assert (goal > 0.8).sum() >= 3 and (goal < 0.2).sum() >= 3  # both solution types occur
    torch.testing.assert_close(goal + end["proxy_rate"], torch.ones(16))  # two doors: one or the other
