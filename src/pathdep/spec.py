"""The study spec: typed, frozen, validated; and the plan of runs it describes.

A spec is TOML (or a dict) with a ``[process]`` (what is trained and how), ``[seeds]`` (init and
data-order seeds, crossed), ``[[variants]]`` (named setup changes as dotted overrides of the
process) and ``[[forks]]`` (children of a parent run from its checkpoint at a step, optionally moved
part-way toward another run first: the nudge test). Every malformed field is reported on its own
line naming the dotted path, the value and what was expected (:class:`pathdep.errors.SpecError`).

>>> spec = parse_spec({"name": "tiny", "process": {"task": "two_features", "steps": 10,
...                    "batch_size": 8, "checkpoints": {"every": 5}}, "seeds": {"init": 2}})
>>> [r.name for r in plan_runs(spec)]
['base-i0-d0', 'base-i1-d0']
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import re
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from pathdep import names
from pathdep.errors import SpecError, bad_value
from pathdep.registry import MODELS, TASKS

NAME_RE = names.NAME_RE
MAX_STEPS = 10_000_000  # a run's loss log (one float per step) travels in every checkpoint
MAX_SEED = 2**63 - 1


def _name(v: str) -> str:
    if not names.is_name(v):
        raise PydanticCustomError("name", "Input should be " + names.EXPECTED.format(n=names.MAX_LENGTH))
    return v


# Integers are strict (``steps = true`` or ``2.5`` is refused, not read as 1 or 2); floats are
# finite and never booleans. Names become paths, so they follow :mod:`pathdep.names`.
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Seed = Annotated[int, Strict(), Field(ge=0, le=MAX_SEED)]
Name = Annotated[str, AfterValidator(_name)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OptimizerSpec(_Strict):
    """Per-run optimizer with torch.optim semantics (applied elementwise to stacked parameters)."""

    name: Literal["sgd", "adam", "adamw"] = "adam"
    lr: Float = Field(1e-3, gt=0, le=10, description="peak learning rate")
    weight_decay: Float = Field(0.0, ge=0, le=10)
    momentum: Float = Field(0.0, ge=0, lt=1, description="SGD momentum")
    betas: tuple[Float, Float] = (0.9, 0.999)
    eps: Float = Field(1e-8, gt=0, le=1)

    @field_validator("betas")
    @classmethod
    def _betas(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in v):
            raise ValueError("both betas must be in [0, 1)")
        return v


class CheckpointSpec(_Strict):
    """Which steps to keep. Step 0 (the init) and the final step are always kept.

    ``every=k`` keeps multiples of k; ``log=true`` keeps 1, 2, 4, ... (Pythia-style) up to
    ``every`` (or the end) and multiples of ``every`` after; ``steps`` lists extra steps.
    """

    every: Int | None = Field(None, gt=0)
    log: Annotated[bool, Strict()] = False
    steps: tuple[Int, ...] = ()

    @field_validator("steps")
    @classmethod
    def _nonneg(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(s < 0 for s in v):
            raise ValueError("checkpoint steps must be >= 0")
        return v

    def resolve(self, total: int) -> tuple[int, ...]:
        """The sorted checkpoint steps for a run of ``total`` steps.

        >>> CheckpointSpec(every=100, log=True).resolve(300)
        (0, 1, 2, 4, 8, 16, 32, 64, 100, 200, 300)
        """
        keep = {0, total, *self.steps}
        if self.every:
            keep.update(range(0, total + 1, self.every))
        if self.log:
            top = total if self.every is None else max(self.every, 1)
            keep.update(2**i for i in range(int(math.log2(max(top, 1))) + 1) if 2**i <= total)
        return tuple(sorted(keep))


class InterventionSpec(_Strict):
    """Change the training batches in steps [start, end): a fraction ``strength`` of each batch."""

    kind: str
    start: Int = Field(0, ge=0)
    end: Int = Field(..., gt=0)
    strength: Float = Field(0.1, ge=0, le=1)
    seed: Seed = Field(0, description="seed of the intervention's own stream")

    @model_validator(mode="after")
    def _window(self) -> InterventionSpec:
        if self.end <= self.start:
            raise ValueError(f"intervention window must have end > start (got start={self.start}, end={self.end})")
        return self


class ProcessSpec(_Strict):
    """What is trained and how. Everything a run's result depends on, except its seeds."""

    task: str
    task_args: dict[str, Any] = Field(default_factory=dict)
    model: str = "mlp"
    model_args: dict[str, Any] = Field(default_factory=dict)
    optimizer: OptimizerSpec = OptimizerSpec()
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: Int = Field(0, ge=0)
    steps: Int = Field(..., gt=0, le=MAX_STEPS)
    batch_size: Int = Field(..., gt=0, le=2**31 - 1, description="examples per step (capped at the train set size)")
    checkpoints: CheckpointSpec = CheckpointSpec()
    intervention: InterventionSpec | None = None
    init_from: str | None = Field(
        None, description="checkpoint whose params (same names and shapes) replace the init: a .safetensors "
        "path, or STUDY/RUN@STEP for a run of another study in the same store")

    @field_validator("task")
    @classmethod
    def _task(cls, v: str) -> str:
        if v not in TASKS:
            raise ValueError(f"unknown task; expected one of {TASKS.names()}")
        return v

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        if v not in MODELS:
            raise ValueError(f"unknown model; expected one of {MODELS.names()}")
        return v

    def checkpoint_steps(self) -> tuple[int, ...]:
        return self.checkpoints.resolve(self.steps)


class SeedsSpec(_Strict):
    """Init and data-order seeds, crossed. An int n means 0..n-1."""

    init: Int | list[Seed] = Field(1)
    data: Int | list[Seed] = Field(1)

    @staticmethod
    def _expand(v: int | list[int]) -> list[int]:
        return list(range(v)) if isinstance(v, int) else list(v)

    @field_validator("init", "data")
    @classmethod
    def _valid(cls, v: int | list[int]) -> int | list[int]:
        if isinstance(v, int) and v < 1:
            raise ValueError("a seed count must be >= 1")
        if isinstance(v, list) and (not v or len(set(v)) != len(v) or min(v) < 0):
            raise ValueError("a seed list must be non-empty, without repeats, of seeds >= 0")
        return v

    def init_seeds(self) -> list[int]:
        return self._expand(self.init)

    def data_seeds(self) -> list[int]:
        return self._expand(self.data)


class VariantSpec(_Strict):
    """A named setup change: dotted overrides of the process, e.g. ``{"optimizer.lr": 1e-2}``."""

    name: Name
    set: dict[str, Any] = Field(default_factory=dict)
    seeds: SeedsSpec | None = Field(None, description="seeds of this variant (default: the study's)")


class ForkSpec(_Strict):
    """Children of ``parent`` from its checkpoint at ``step``, one per data seed (and lambda).

    With ``toward``, each child starts from (1 - lam) * parent + lam * toward (same step).
    ``set`` changes the process from the fork on (a branch with a change).
    """

    name: Name
    parent: str
    step: Int = Field(..., ge=0)
    data_seeds: list[Seed] = Field(..., min_length=1)
    toward: str | None = None
    lambdas: list[Float] = Field(default_factory=list)
    set: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _lambdas(self) -> ForkSpec:
        if self.lambdas and self.toward is None:
            raise ValueError("lambdas need a 'toward' run")
        if any(not 0 <= lam <= 1 for lam in self.lambdas):
            raise ValueError(f"lambdas must be in [0, 1], got {self.lambdas}")
        return self


class MeasureSpec(_Strict):
    """How ``pathdep measure`` (and the demo) measure the study by default; training ignores it."""

    n_alpha: Int = Field(21, ge=2, le=10_000, description="interpolation points per pair, ends included")
    steps: tuple[Annotated[Int, Field(ge=0)], ...] | None = Field(None, description="checkpoint steps of the per-step tables (default all)")
    max_cohort: Int | None = Field(32, ge=2, description="runs per cohort in barriers and soups")
    max_examples: Int | None = Field(None, ge=1, description="examples per split in barriers and ablations")
    alignment: tuple[Literal["weight", "activation"], ...] = Field(
        ("weight", "activation"), description="alignments barriers are also measured after (weight / activation matching)")


class StudySpec(_Strict):
    """A whole study: one process, its seeds, variants and forks."""

    name: Name
    description: str = ""
    process: ProcessSpec
    seeds: SeedsSpec = SeedsSpec()
    variants: list[VariantSpec] = Field(default_factory=list)
    forks: list[ForkSpec] = Field(default_factory=list)
    measure: MeasureSpec = MeasureSpec()

    def spec_hash(self) -> str:
        """Content hash of what training depends on, leaving default-valued fields out (adding a
        field keeps old hashes valid) and the ``measure`` section out (it changes no checkpoint)."""
        return content_hash(self.model_dump(mode="json", exclude_defaults=True, exclude={"measure", "description"}))


# ---------------------------------------------------------------------------------------------
# Parsing and error formatting


def content_hash(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith(("function-", "union[")):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def _join(prefix: str, path: str) -> str:
    if not path:
        return prefix.rstrip(".")
    return prefix + path if prefix.endswith(".") or not prefix else f"{prefix}.{path}"


_UNION_TAG = re.compile(r"^(constrained-)?int$|^list\[.*\]$")


def _other_branch(e: dict[str, Any]) -> bool:
    """An error of the union branch (``int | list[int]``) that the input's type did not choose."""
    tags = [p for p in e["loc"] if isinstance(p, str) and _UNION_TAG.match(p)]
    if not tags:
        return False
    return (isinstance(e.get("input"), list) and not tags[0].startswith("list[")) or e["type"] == "list_type"


def _shown(value: Any) -> Any:
    return value[:60] + "..." + value[-20:] if isinstance(value, str) and len(value) > 120 else value


def _lines(err: ValidationError, prefix: str = "") -> list[str]:
    lines = []
    for e in err.errors():
        if _other_branch(e):
            continue
        path = _join(prefix, _dotted(tuple(p for p in e["loc"] if not (isinstance(p, str) and _UNION_TAG.match(p)))))
        value = _shown(e.get("input"))
        if e["type"] == "extra_forbidden":
            lines.append(f"Unknown field {path!r} (value {value!r}); check its spelling.")
            continue
        if e["type"] == "missing":
            lines.append(f"The {path!r} field is required but missing.")
            continue
        msg = e["msg"].removeprefix("Value error, ").removeprefix("Input should be ")
        msg = msg[0].lower() + msg[1:] if msg else msg
        where = f"The {path!r} field" if path else "The spec"
        lines.append(f"{where} must be {msg}. Got {value!r} instead." if e["msg"].startswith("Input should")
                     else f"{where} is invalid: {msg}. Got {value!r}.")
    return lines


def _validate(model: type[BaseModel], data: Any, prefix: str = "") -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise SpecError("\n".join(_lines(err, prefix))) from None


def parse_spec(data: dict[str, Any]) -> StudySpec:
    """Validate a spec dict, including every variant's and fork's resolved process."""
    spec = _validate(StudySpec, data)
    base = spec.process
    resolve_process(base, {}, "process")
    names = ["base"]
    for i, v in enumerate(spec.variants):
        if v.name in names:
            raise SpecError(f"The 'variants[{i}].name' field must be unique. Got {v.name!r} twice.")
        names.append(v.name)
        resolve_process(base, v.set, f"variants[{i}].set")
    fork_names: set[str] = set()
    for i, f in enumerate(spec.forks):
        if f.name in fork_names or f.name in names:
            raise SpecError(f"The 'forks[{i}].name' field must be unique. Got {f.name!r} twice.")
        fork_names.add(f.name)
        for field in ("parent", "toward"):
            ref = getattr(f, field)
            if ref is not None and not is_planned(spec, ref):
                raise SpecError(
                    f"The 'forks[{i}].{field}' field must name a run of this study. Got {ref!r} instead; "
                    f"runs are named like {_first_run(spec)!r}."
                )
        parent_proc = process_of(spec, f.parent)
        if f.step not in parent_proc.checkpoint_steps():
            raise SpecError(
                f"The 'forks[{i}].step' field must be a checkpoint step of {f.parent!r} "
                f"({list(parent_proc.checkpoint_steps())}). Got {f.step} instead."
            )
        if f.toward is not None and process_of(spec, f.toward).model_args != parent_proc.model_args:
            raise SpecError(f"The 'forks[{i}].toward' run must have the parent's architecture. Got {f.toward!r}.")
        resolve_process(parent_proc, f.set, f"forks[{i}].set")
    return spec


def load_toml(path: str | Path) -> StudySpec:
    """Read and validate a spec file."""
    path = Path(path)
    if path.is_dir():
        raise SpecError(f"Spec file {str(path)!r} is a directory; expected a TOML file.")
    if not path.is_file():
        raise SpecError(f"Spec file {str(path)!r} does not exist.")
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except OSError as e:
        raise SpecError(f"Spec file {str(path)!r} cannot be read ({e.strerror or e}).") from None
    except UnicodeDecodeError as e:
        raise SpecError(f"Spec file {str(path)!r} is not UTF-8 text (byte {e.start}); expected a TOML file.") from None
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: not valid TOML: {e}") from None
    return parse_spec(data)


def _set_dotted(d: dict[str, Any], key: str, value: Any, where: str) -> None:
    parts = key.split(".")
    cur = d
    for p in parts[:-1]:
        nxt = cur.get(p)
        if nxt is None and p == "intervention":
            nxt = cur[p] = {}
        if not isinstance(nxt, dict):
            raise SpecError(f"The '{where}' key {key!r} does not name a field of the process.")
        cur = nxt
    cur[parts[-1]] = value


def resolve_process(base: ProcessSpec, overrides: dict[str, Any], where: str) -> ProcessSpec:
    """Apply dotted overrides to a process and validate the result, task and model args included."""
    data = copy.deepcopy(base.model_dump(mode="python"))
    for key, value in overrides.items():
        _set_dotted(data, key, value, where)
    prefix = f"{where}→process." if overrides else "process."
    proc = _validate(ProcessSpec, data, prefix)
    for schema, args, where in ((TASKS[proc.task].args, proc.task_args, "task_args."),
                                (MODELS[proc.model].args, proc.model_args, "model_args.")):
        _strict_scalars(schema, args, prefix + where)
        _validate(schema, args, prefix + where)
    _cross_checks(proc, prefix)
    return proc


def _accepts_bool(annotation: Any) -> bool:
    return annotation is bool or any(_accepts_bool(a) for a in typing.get_args(annotation))


def _strict_scalars(model: type[BaseModel], data: dict[str, Any], prefix: str) -> None:
    """What pydantic's lax mode would let through in a registry's arguments: a boolean where the
    field takes no boolean (``n_train = true`` read as 1), and infinite or NaN floats."""
    for name, field in model.model_fields.items():
        stack = [(name, data.get(name))]
        while stack:
            path, v = stack.pop()
            if isinstance(v, (list, tuple)):
                stack += [(f"{path}[{i}]", x) for i, x in enumerate(v)]
            elif isinstance(v, bool) and not _accepts_bool(field.annotation):
                raise bad_value(prefix + path, v, "a number, not a boolean")
            elif isinstance(v, float) and not math.isfinite(v):
                raise bad_value(prefix + path, v, "a finite number")


def _cross_checks(proc: ProcessSpec, prefix: str) -> None:
    """Constraints between fields of a process, each reported on the field that breaks them."""
    beyond = [s for s in proc.checkpoints.steps if s > proc.steps]
    if beyond:
        raise bad_value(prefix + "checkpoints.steps", beyond[0], f"at most the last step ({proc.steps})")
    if proc.warmup_steps and proc.warmup_steps >= proc.steps:
        raise bad_value(prefix + "warmup_steps", proc.warmup_steps, f"below steps ({proc.steps})")
    iv = proc.intervention
    if iv is not None and iv.end > proc.steps:
        raise bad_value(prefix + "intervention.end", iv.end, f"at most the last step ({proc.steps})")


# ---------------------------------------------------------------------------------------------
# Planning


@dataclass(frozen=True)
class RunPlan:
    """One run: a process plus its variation. ``fork`` is None for runs trained from init."""

    name: str
    variant: str
    process: ProcessSpec
    init_seed: int
    data_seed: int
    fork: str | None = None
    parent: str | None = None
    fork_step: int = 0
    toward: str | None = None
    lam: float | None = None

    @property
    def run_hash(self) -> str:
        return content_hash(
            {"process": self.process.model_dump(mode="json", exclude_defaults=True),
             "init": self.init_seed, "data": self.data_seed, "parent": self.parent,
             "fork_step": self.fork_step, "toward": self.toward, "lam": self.lam}
        )


def is_planned(spec: StudySpec, run_name: str) -> bool:
    """Whether ``run_name`` is a run trained from init in the spec's plan (without listing the plan)."""
    m = re.fullmatch(r"(.+)-i(\d+)-d(\d+)", run_name)
    if m is None:
        return False
    variant, i, d = m.group(1), int(m.group(2)), int(m.group(3))
    seeds = spec.seeds if variant == "base" else next((v.seeds or spec.seeds for v in spec.variants if v.name == variant), None)
    if seeds is None or f"{variant}-i{i}-d{d}" != run_name:
        return False
    return all(n in range(s) if isinstance(s, int) else n in s for n, s in ((i, seeds.init), (d, seeds.data)))


def _first_run(spec: StudySpec) -> str:
    init, data = (v[0] if isinstance(v, list) else 0 for v in (spec.seeds.init, spec.seeds.data))
    return f"base-i{init}-d{data}"


def process_of(spec: StudySpec, run_name: str) -> ProcessSpec:
    variant = run_name.rsplit("-i", 1)[0]
    if variant == "base":
        return spec.process
    v = next(v for v in spec.variants if v.name == variant)
    return resolve_process(spec.process, v.set, "variants")


def plan_runs(spec: StudySpec, check_forks: bool = True) -> list[RunPlan]:
    """Every run of the study: variants x init seeds x data seeds, then fork children."""
    runs: list[RunPlan] = []
    for vname, overrides, seeds in [("base", {}, spec.seeds)] + [(v.name, v.set, v.seeds or spec.seeds) for v in spec.variants]:
        proc = resolve_process(spec.process, overrides, "variants")
        for i in seeds.init_seeds():
            for d in seeds.data_seeds():
                runs.append(RunPlan(f"{vname}-i{i}-d{d}", vname, proc, i, d))
    if not check_forks:
        return runs
    by_name = {r.name: r for r in runs}
    for f in spec.forks:
        parent = by_name[f.parent]
        proc = resolve_process(parent.process, f.set, "forks")
        for lam in f.lambdas or [None]:
            for d in f.data_seeds:
                tag = f"-l{lam:g}" if lam is not None else ""
                runs.append(RunPlan(f"{f.name}{tag}-d{d}", parent.variant, proc, parent.init_seed, d,
                                    fork=f.name, parent=parent.name, fork_step=f.step, toward=f.toward, lam=lam))
    return runs


# ---------------------------------------------------------------------------------------------
# Run definitions: what a run's bits depend on, hashed per run


def continues_exactly(process: ProcessSpec) -> bool:
    """Whether a run trained to N steps and then continued to M is bit-identical to one trained to M.

    True when nothing before step N depends on the total ``steps``: the data order (a function of
    seed and epoch), warmup (its own length), interventions (absolute steps) and the checkpoint
    schedule (it only chooses what is saved) never do; a cosine schedule spans the total steps.

    >>> continues_exactly(ProcessSpec(task="two_features", steps=10, batch_size=8, schedule="cosine"))
    False
    """
    return process.schedule == "constant"


def _definition(r: RunPlan, by_name: dict[str, RunPlan], prefix: bool) -> dict[str, Any]:
    """The run's definition; with ``prefix``, only what its checkpoints up to any step depend on."""
    proc = r.process.model_dump(mode="json", exclude_defaults=True)
    if prefix:
        proc.pop("checkpoints", None)  # what is saved, not what is computed
        if continues_exactly(r.process):
            proc.pop("steps")
    out: dict[str, Any] = {"process": proc, "init_seed": r.init_seed, "data_seed": r.data_seed}
    if r.parent is not None:
        fork: dict[str, Any] = {"parent": _definition(by_name[r.parent], by_name, True), "step": r.fork_step}
        if r.toward is not None and r.lam:
            fork |= {"toward": _definition(by_name[r.toward], by_name, True), "lam": r.lam}
        out["fork"] = fork
    return out


def run_definitions(plan: list[RunPlan]) -> dict[str, dict[str, Any]]:
    """{run: definition}: everything a run's checkpoints depend on, and nothing else.

    A definition holds the run's process (after its variant's and fork's overrides), its seeds
    and, for a fork child, the fork step, lambda and the definitions of its parent and ``toward``
    run up to that step (a parent's length counts only when its schedule depends on it).
    Default-valued fields are left out, so adding a field keeps old definitions (and hashes) valid;
    names of variants and forks are left out too: they change no bit.

    >>> plan = plan_runs(parse_spec({"name": "t", "process": {"task": "two_features", "steps": 4,
    ...     "batch_size": 8}, "seeds": {"init": 2}}))
    >>> run_definitions(plan)["base-i1-d0"]
    {'process': {'task': 'two_features', 'steps': 4, 'batch_size': 8}, 'init_seed': 1, 'data_seed': 0}
    """
    by_name = {r.name: r for r in plan}
    return {r.name: _definition(r, by_name, False) for r in plan}


def run_hashes(plan: list[RunPlan]) -> dict[str, str]:
    """{run: content hash of its :func:`run_definitions` entry}."""
    return {name: content_hash(d) for name, d in run_definitions(plan).items()}


def build_process(process: ProcessSpec | dict[str, Any]):
    """The (task, model) a process trains. Accepts a ProcessSpec or its JSON dict."""
    if isinstance(process, dict):
        process = _validate(ProcessSpec, process, "process.")
    task = _build_task(process.task, json.dumps(process.task_args, sort_keys=True))
    margs = MODELS[process.model].args.model_validate(process.model_args)
    model = MODELS[process.model].build(margs, task.in_shape, task.n_outputs)
    return task, model


@functools.lru_cache(maxsize=16)
def _build_task(name: str, args_json: str):
    """Tasks are deterministic functions of their arguments: build each once per process."""
    entry = TASKS[name]
    return entry.build(entry.args.model_validate(json.loads(args_json)))


def valid_name(name: str) -> bool:
    return names.is_name(name)
