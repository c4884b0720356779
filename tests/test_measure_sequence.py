"""Every measurement table works on a token-level (sequence) study, transformer included."""

import pytest

from pathdep import Study
from pathdep.measure import MeasureOptions, measure_study
from tests.helpers import SEQ



@pytest.mark.slow
def test_all_tables_on_a_transformer_sequence_study(tmp_path):
    study = Study.from_dict(SEQ, store=tmp_path)
    study.run()
    tables = measure_study(study, options=MeasureOptions(n_alpha=3, max_examples=8))
    bars = tables["barriers"]
    assert len(bars) and (bars.loss_barrier.abs() < 10).all()
    imp = tables["importance"]
    heads = imp[imp.layer == "blocks.0.attn.hook_z"]
    assert sorted(heads.unit.unique()) == [-1, 0, 1]  # two heads and the whole layer
    assert (heads.delta_loss.abs() > 0).any()
    assert set(tables["static"].measure) >= {"weight_norm", "sharpness"}
