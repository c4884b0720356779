"""Checkpoint suites on the Hugging Face hub, as data: one row per suite.

A suite is a set of training runs (one per seed) with checkpoints at known steps. A row says how
to name the hub repository of a seed and the revision of a step:

- ``repo`` is formatted with ``seed`` (and ``kstep`` = step // 1000 for suites that publish each
  checkpoint as its own repository, like the MultiBERTs);
- ``revision`` is formatted with ``step`` (a git branch or tag of the repository);
- ``seeds`` and ``steps`` are what the publisher lists;
- ``auto_class`` is the transformers class that loads it (``AutoModelForCausalLM`` or
  ``AutoModelForMaskedLM``);
- ``varies`` says what a seed changes: ``("init", "data")`` for a full reseed, ``("data",)`` or
  ``("init",)`` for the decoupled Pythia-160m runs.

Sources (naming checked against the publishers' model cards):

- Pythia (Biderman et al., 2023): ``EleutherAI/pythia-{size}`` and ``-deduped``, 154
  checkpoints: ``step0``, ``step1``, ``step2``, ``step4``, ..., ``step512``, then ``step1000`` to
  ``step143000`` every 1000. One run each (seed 1234).
- PolyPythias (van der Wal et al., 2025): ``EleutherAI/pythia-{size}-seed{1..9}`` for 14m, 31m,
  70m, 160m, 410m, same revisions; ``pythia-160m-data-seed{1..3}`` (data order only) and
  ``pythia-160m-weight-seed{1..3}`` (init only).
- MultiBERTs (Sellam et al., 2022): ``google/multiberts-seed_{0..24}`` (final, 2M steps) and
  ``google/multiberts-seed_{0..4}-step_{k}k`` intermediate repositories, k in 0, 20, ..., 200,
  300, ..., 2000: 29 repositories per seed. The model cards count "28 checkpoints captured
  during the course of pre-training" (140 for the 5 runs): 20k to 200k every 20k (10) and 300k
  to 2000k every 100k (18); the hub also holds ``step_0k``, the initialisation (its own model
  card, "captured at step 0k").
- Stanford CRFM Mistral GPT-2: ``stanford-crfm/{alias,battlestar,caprica,darkmatter,expanse}-gpt2-small-x{21,49,81,343,777}``
  and ``{arwen,beren,celebrimbor,durin,eowyn}-gpt2-medium-x{...}``, revisions ``checkpoint-{step}``
  every 10 steps to 100, every 50 to 2000, every 100 to 20000, every 1000 to 400000.

>>> s = SUITES["pythia-70m-seeds"]
>>> s.repo_of(3), s.revision_of(512)
('EleutherAI/pythia-70m-seed3', 'step512')
>>> SUITES["multiberts-steps"].repo_of(2, 40_000), SUITES["multiberts-steps"].revision_of(40_000)
('google/multiberts-seed_2-step_40k', 'main')
"""

from __future__ import annotations

from dataclasses import dataclass

from pathdep.errors import SpecError

CAUSAL = "AutoModelForCausalLM"
MASKED = "AutoModelForMaskedLM"


@dataclass(frozen=True)
class Suite:
    """One published suite: how to find the checkpoint of (seed, step) on the hub."""

    name: str
    repo: str  # formatted with seed=, kstep= and name= (the seed's entry in ``names``)
    revision: str  # formatted with step=
    seeds: tuple[int, ...]
    steps: tuple[int, ...]
    auto_class: str = CAUSAL
    varies: tuple[str, ...] = ("init", "data")
    doc: str = ""
    names: tuple[tuple[int, str], ...] = ()  # per-seed run names where the repo is not a pattern of the seed

    def repo_of(self, seed: int, step: int | None = None) -> str:
        return self.repo.format(seed=seed, kstep=(step or 0) // 1000, name=dict(self.names).get(seed, ""))

    def revision_of(self, step: int) -> str:
        return self.revision.format(step=step)

    def run_name(self, seed: int) -> str:
        return f"seed{seed}"

    def repos(self, step: int | None = None) -> list[str]:
        """The hub repository of every seed (at ``step`` where each step is its own repository;
        default the last step).

        >>> SUITES["crfm-gpt2-small"].repos()[:2]
        ['stanford-crfm/alias-gpt2-small-x21', 'stanford-crfm/battlestar-gpt2-small-x49']
        """
        return [self.repo_of(seed, self.steps[-1] if step is None else step) for seed in self.seeds]

    def seeds_option(self) -> str:
        """What ``--seeds`` takes to import every seed: a range where the seeds are consecutive.

        >>> SUITES["pythia-70m"].seeds_option(), SUITES["pythia-70m-seeds"].seeds_option()
        ('1234', '1-9')
        >>> SUITES["crfm-gpt2-small"].seeds_option()
        '21,49,81,343,777'
        """
        lo, hi = self.seeds[0], self.seeds[-1]
        if len(self.seeds) > 2 and self.seeds == tuple(range(lo, hi + 1)):
            return f"{lo}-{hi}"
        return ",".join(map(str, self.seeds))


PYTHIA_STEPS = (0, *(2**i for i in range(10)), *range(1000, 143_001, 1000))
CRFM_STEPS = (*range(0, 100, 10), *range(100, 2000, 50), *range(2000, 20_000, 100), *range(20_000, 400_001, 1000))
MULTIBERTS_STEPS = (*range(0, 200_001, 20_000), *range(300_000, 2_000_001, 100_000))

PYTHIA_SIZES = ("14m", "31m", "70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b")
PYTHIA_DEDUPED_SIZES = ("70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b")
POLYPYTHIA_SIZES = ("14m", "31m", "70m", "160m", "410m")
CRFM_SEEDS = (21, 49, 81, 343, 777)

_ROWS: list[Suite] = [
    *(Suite(f"pythia-{s}", f"EleutherAI/pythia-{s}", "step{step}", (1234,), PYTHIA_STEPS,
            doc=f"Pythia {s} on the Pile (one run)") for s in PYTHIA_SIZES),
    *(Suite(f"pythia-{s}-deduped", f"EleutherAI/pythia-{s}-deduped", "step{step}", (1234,), PYTHIA_STEPS,
            doc=f"Pythia {s} on the deduplicated Pile (one run)") for s in PYTHIA_DEDUPED_SIZES),
    *(Suite(f"pythia-{s}-seeds", f"EleutherAI/pythia-{s}-seed{{seed}}", "step{step}", tuple(range(1, 10)),
            PYTHIA_STEPS, doc=f"PolyPythias {s}: 9 reseeded runs (init and data order)") for s in POLYPYTHIA_SIZES),
    Suite("pythia-160m-data-seeds", "EleutherAI/pythia-160m-data-seed{seed}", "step{step}", (1, 2, 3), PYTHIA_STEPS,
          varies=("data",), doc="PolyPythias 160m: only the data order reseeded"),
    Suite("pythia-160m-weight-seeds", "EleutherAI/pythia-160m-weight-seed{seed}", "step{step}", (1, 2, 3),
          PYTHIA_STEPS, varies=("init",), doc="PolyPythias 160m: only the init reseeded"),
    Suite("multiberts", "google/multiberts-seed_{seed}", "main", tuple(range(25)), (2_000_000,), MASKED,
          doc="MultiBERTs: 25 BERT-base runs, final checkpoints"),
    Suite("multiberts-steps", "google/multiberts-seed_{seed}-step_{kstep}k", "main", tuple(range(5)),
          MULTIBERTS_STEPS, MASKED, doc="MultiBERTs seeds 0-4: intermediate checkpoints (one repo each)"),
    Suite("crfm-gpt2-small", "stanford-crfm/{name}-gpt2-small-x{seed}", "checkpoint-{step}", CRFM_SEEDS, CRFM_STEPS,
          doc="Stanford CRFM (Mistral) GPT-2 small, 5 seeds on OpenWebText",
          names=tuple(zip(CRFM_SEEDS, ("alias", "battlestar", "caprica", "darkmatter", "expanse")))),
    Suite("crfm-gpt2-medium", "stanford-crfm/{name}-gpt2-medium-x{seed}", "checkpoint-{step}", CRFM_SEEDS, CRFM_STEPS,
          doc="Stanford CRFM (Mistral) GPT-2 medium, 5 seeds on OpenWebText",
          names=tuple(zip(CRFM_SEEDS, ("arwen", "beren", "celebrimbor", "durin", "eowyn")))),
]

SUITES: dict[str, Suite] = {s.name: s for s in _ROWS}


def get_suite(name: str) -> Suite:
    """The suite called ``name``; raises :class:`SpecError` listing the known ones."""
    if name not in SUITES:
        raise SpecError(f"The 'suite' parameter must be one of {sorted(SUITES)}. Got {name!r} instead.")
    return SUITES[name]


def check_selection(suite: Suite, seeds: list[int], steps: list[int]) -> None:
    """Raise :class:`SpecError` naming the first seed or step the suite does not publish."""
    for what, asked, have in (("seeds", seeds, suite.seeds), ("steps", steps, suite.steps)):
        bad = [v for v in asked if v not in have]
        if bad:
            raise SpecError(
                f"Suite {suite.name!r} has no {what[:-1]} {bad[0]}; its {what} are {_short(have)}."
            )


def _short(values: tuple[int, ...]) -> str:
    v = list(values)
    return str(v) if len(v) <= 12 else f"[{', '.join(map(str, v[:6]))}, ..., {', '.join(map(str, v[-3:]))}] ({len(v)} in all)"
