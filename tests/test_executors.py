"""Populations trained in worker processes or on Ray give the same bits as a serial run."""

import pytest

from pathdep import Study
from pathdep.train import RayExecutor, local_executor
from tests.helpers import file_hashes, tiny

SPEC = tiny(**{"seeds.init": 4, "variants": [{"name": "fast", "set": {"optimizer.lr": 1e-2}}],
               "forks": [{"name": "f", "parent": "base-i0-d0", "step": 20, "data_seeds": [1, 2]}]})


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    study = Study.from_dict(SPEC, store=tmp_path_factory.mktemp("serial"))
    study.run()
    return file_hashes(study.root)


@pytest.mark.slow
def test_worker_processes_give_the_serial_bits(tmp_path, serial):
    study = Study.from_dict(SPEC, store=tmp_path)
    with local_executor(2) as pool:
        study.run(executor=pool, max_population=3)  # also splits each population differently
    assert file_hashes(study.root) == serial


@pytest.mark.slow
def test_ray_gives_the_serial_bits(tmp_path, serial):
    study = Study.from_dict(SPEC, store=tmp_path)
    executor = RayExecutor(num_cpus=2)
    try:
        study.run(executor=executor)
    finally:
        executor.shutdown()
    assert file_hashes(study.root) == serial
