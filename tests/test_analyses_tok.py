"""The per-token finding (TOK): measured on language-model studies only, from stored behaviour."""

import numpy as np
import pytest

from pathdep import Study
from pathdep.analyses import profile
from pathdep.analyses.tok import mean_pair_spearman
from pathdep.measure import measure_study
from tests.helpers import SEQ, tiny



def test_mean_pair_spearman_against_its_definition():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 500))
    assert mean_pair_spearman(np.vstack([x, 2 * x + 1, np.exp(x)])) == pytest.approx(1.0)  # monotone maps
    assert abs(mean_pair_spearman(rng.normal(size=(4, 5000)))) < 0.05
    from scipy.stats import spearmanr

    y = rng.normal(size=(3, 200))
    naive = np.mean([spearmanr(y[i], y[j]).statistic for i, j in ((0, 1), (0, 2), (1, 2))])
    assert mean_pair_spearman(y) == pytest.approx(naive)


@pytest.mark.slow
def test_tok_is_measured_on_a_language_model_study_and_not_elsewhere(tmp_path):
    study = Study.from_dict(SEQ | {"seeds": {"init": 5}}, store=tmp_path / "seq")  # TOK needs 5 runs
    study.run()
    measure_study(study, which=["properties", "behaviour"])
    tok = profile(study)["TOK"]
    assert tok.measured and -1 <= tok.value <= 1 and tok.ci[0] <= tok.value <= tok.ci[1]
    assert tok.details["tokens"] == 16 * 40 and sum(tok.details["curve_kinds"].values()) == 16 * 40
    assert tok.plot[:8] == b"\x89PNG\r\n\x1a\n"

    other = Study.from_dict(tiny(), store=tmp_path / "mlp")
    other.run()
    measure_study(other, which=["properties", "behaviour"])
    assert not profile(other)["TOK"].measured
