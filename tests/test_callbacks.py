"""Runs trained by a Hugging Face Trainer and by Lightning, recorded through the pathdep callbacks."""

import pytest
import torch
from torch import nn

from pathdep import Study
from pathdep.registry import TASKS
from pathdep.sources import Recorder

TASK_ARGS = {"n_train": 256, "n_test": 128, "n_probe": 64}
NAMES = ["fc0.weight", "fc0.bias", "fc1.weight", "fc1.bias"]  # the mlp family's names, in the module's order


def _train_split():
    entry = TASKS["two_features"]
    task = entry.build(entry.args.model_validate(TASK_ARGS))
    return task.train.x, task.train.y.float()


class Net(nn.Module):
    """The mlp family's layout (11 -> 8 -> 1) behind a forward that returns the loss, as HF models do."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)  # the user's script, not library code
        self.net = nn.Sequential(nn.Linear(11, 8), nn.ReLU(), nn.Linear(8, 1))

    def forward(self, x, labels=None):
        logits = self.net(x).squeeze(-1)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits}


class Pairs(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.y[i]}


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _recorder(store, name):
    return Recorder(store, name, task="two_features", task_args=TASK_ARGS, model="mlp", model_args={"hidden": [8]}, keys="order")


def _assert_recorded(study, run, steps, first, last, loss_at_0):
    assert study.steps(run) == steps
    for step, want in ((steps[0], first), (steps[-1], last)):
        got = study.load(run, step)
        assert all(torch.equal(got[k], w) for k, w in zip(NAMES, want, strict=True)), step
    log = study.train_log(run)
    assert log["step"].tolist() == list(range(steps[-1]))  # one loss per optimiser step
    assert log["loss"].iloc[0] == pytest.approx(loss_at_0, rel=1e-6)


def test_hf_trainer_records_checkpoints_seeds_and_losses(tmp_path):
    from transformers import Trainer, TrainingArguments

    from pathdep.sources.callbacks import HFCallback

    x, y = _train_split()
    model = Net(3)
    first = _params(model.net)
    args = TrainingArguments(output_dir=str(tmp_path / "hf"), max_steps=12, per_device_train_batch_size=16, learning_rate=0.05,
                             logging_steps=1, save_strategy="steps", save_steps=4, report_to=[], use_cpu=True, disable_tqdm=True, seed=7,
                             data_seed=11, dataloader_num_workers=0)
    seen = []

    class FirstBatch(torch.utils.data.Dataset):  # records the first batch's examples, to recompute its loss
        def __len__(self):
            return len(x)

        def __getitem__(self, i):
            seen.append(i)
            return Pairs(x, y)[i]

    rec = _recorder(tmp_path / "store", "hf")
    trainer = Trainer(model=model, args=args, train_dataset=FirstBatch(), callbacks=[HFCallback(rec, "seed3", every=5, module="net")])
    trainer.train()
    idx = torch.tensor(seen[:16])
    with torch.no_grad():
        loss0 = nn.functional.binary_cross_entropy_with_logits(nn.Sequential(*_rebuild(first))(x[idx]).squeeze(-1), y[idx])
    study = Study.open(tmp_path / "store", "hf")
    _assert_recorded(study, "seed3", [0, 4, 5, 8, 10, 12], first, _params(model.net), float(loss0))  # every 5, and the Trainer's saves
    hf_losses = {e["step"]: e["loss"] for e in trainer.state.log_history if "loss" in e}
    assert study.train_log("seed3").set_index("step")["loss"].to_dict() == pytest.approx({s - 1: v for s, v in hf_losses.items()})
    record = study.runs().set_index("run").loc["seed3"]
    assert (record["init_seed"], record["data_seed"]) == (7, 11)


def _rebuild(params):
    """An 11 -> 8 -> 1 net holding ``params`` (fc0.weight, fc0.bias, fc1.weight, fc1.bias)."""
    a, b = nn.Linear(11, 8), nn.Linear(8, 1)
    with torch.no_grad():
        for p, v in zip([*a.parameters(), *b.parameters()], params):
            p.copy_(v)
    return [a, nn.ReLU(), b]


def test_lightning_records_checkpoints_seeds_and_losses(tmp_path, monkeypatch):
    import lightning.pytorch as L

    from pathdep.sources.callbacks import LightningCallback

    x, y = _train_split()

    class Lit(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = Net(5)

        def training_step(self, batch, batch_idx):
            return self.model(*batch)["loss"]

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    monkeypatch.setenv("PL_GLOBAL_SEED", "0")  # restored after the test; seed_everything sets it
    L.seed_everything(21, verbose=False)
    lit = Lit()
    first = _params(lit.model.net)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=False)
    rec = _recorder(tmp_path / "store", "lit")
    trainer = L.Trainer(max_steps=9, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[LightningCallback(rec, "seed5", every=4, module="model.net")])
    trainer.fit(lit, data)
    with torch.no_grad():
        loss0 = nn.functional.binary_cross_entropy_with_logits(nn.Sequential(*_rebuild(first))(x[:16]).squeeze(-1), y[:16])
    study = Study.open(tmp_path / "store", "lit")
    _assert_recorded(study, "seed5", [0, 4, 8, 9], first, _params(lit.model.net), float(loss0))
    record = study.runs().set_index("run").loc["seed5"]
    assert (record["init_seed"], record["data_seed"]) == (21, 21)


def test_callback_arguments_are_checked(tmp_path):
    from pathdep.errors import PathdepError
    from pathdep.sources.callbacks import HFCallback

    with pytest.raises(PathdepError, match="The 'every' parameter of the pathdep callback must be an int >= 1 or None. Got 0 instead."):
        HFCallback(_recorder(tmp_path, "s"), "r", every=0)
