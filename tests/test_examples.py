"""Every example spec in examples/ is valid, plans its runs and builds a model that runs on its task."""

from pathlib import Path

import pytest
import torch

from pathdep import Study

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.toml"))


def test_there_are_examples_of_every_built_in_task():
    from pathdep import TASKS

    used = {Study.from_toml(p, store="unused").spec.process.task for p in EXAMPLES}
    assert used == set(TASKS.names())


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_spec_plans_and_builds(path, tmp_path):
    study = Study.from_toml(path, store=tmp_path)
    assert study.name == path.stem and len(study.plan) >= 2
    for variant_run in {r.variant: r.name for r in study.plan}.values():
        model, task = study.model(variant_run), study.task_of(variant_run)
        params = model.init_population([0, 1])
        x = task.test.x[:3].expand(2, *task.test.x[:3].shape)
        with torch.no_grad():
            logits = model.apply(params, x)
        assert logits.shape[:2] == (2, 3) and torch.isfinite(logits).all()
