"""Draw the figures of docs/processes-data.md from studies already trained into a store.

    pathdep run examples/mnist1d_mlp.toml --store STORE   # ... and the other examples
    python docs/processes_figures.py STORE                 # writes docs/img/process_*.png

Each figure reads checkpoints through the Study API (and the ``barriers`` table where the width
sweep was measured); nothing is trained here. A study missing from the store is skipped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from pathdep import Study  # noqa: E402
from pathdep import store as st  # noqa: E402
from pathdep.measure.connectivity import alignment_of  # noqa: E402

IMG = Path(__file__).parent / "img"


def properties_over_steps(study: Study, variant: str | None = None) -> pd.DataFrame:
    """Every task property of every run at every checkpoint: columns run, step, <property>..."""
    runs = study.runs()
    if variant is not None:
        runs = runs[runs["variant"] == variant]
    names = list(runs["run"])
    model, task = study.model(names[0]), study.task_of(names[0])
    frames = []
    for step in study.steps(names[0]):
        with torch.no_grad():
            props = task.properties(model, study.load_population(names, step))
        frames.append(pd.DataFrame({"run": names, "step": step, **{k: v.double().numpy() for k, v in props.items()}}))
    return pd.concat(frames, ignore_index=True)


def curves(ax, df: pd.DataFrame, column: str, color: str, label: str) -> None:
    """One thin line per run and the median in bold."""
    for _, g in df.groupby("run"):
        ax.plot(g["step"], g[column], color=color, alpha=0.25, lw=0.8)
    med = df.groupby("step")[column].median()
    ax.plot(med.index, med.values, color=color, lw=2, label=label)


def save(fig, name: str) -> None:
    IMG.mkdir(exist_ok=True)
    path = IMG / name
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"{path} ({path.stat().st_size // 1024} KB)")


def mnist1d(store: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, name in zip(axes[:2], ("mnist1d_mlp", "mnist1d_cnn")):
        df = properties_over_steps(Study.open(store, name))
        for col, color in (("test_acc", "C0"), ("noisy_acc", "C1"), ("shifted_acc", "C2")):
            curves(ax, df, col, color, col.removesuffix("_acc"))
        ax.set(title=f"{name}: accuracy per run", xlabel="step", ylim=(0, 1), xscale="symlog", xlim=(0, None))
        ax.legend(loc="upper left", fontsize=8)
    sweep = Study.open(store, "mnist1d_width_sweep") if "mnist1d_width_sweep" in st.list_studies(store) else None
    if sweep is not None and sweep.has_table("barriers"):
        bars = sweep.read_table("barriers")
        runs = sweep.runs().set_index("run")
        bars = bars[(bars["split"] == "test") & (bars["step"] == bars["step"].max())]
        width = {v: sweep.model(r).hidden[0] for r, v in runs["variant"].items()}
        bars = bars.assign(width=bars["run_a"].map(runs["variant"]).map(width))
        kind = alignment_of(bars)
        for alignment, marker, label in (("none", "o", "raw"), ("weight_matching", "s", "weight-matched"),
                                         ("activation_matching", "^", "activation-matched")):
            b = bars[kind == alignment].groupby("width")["error_barrier"]
            if len(b):
                axes[2].errorbar(b.mean().index, b.mean(), yerr=b.std(), marker=marker, capsize=3, label=label)
        axes[2].set(xscale="log", xlabel="hidden width", ylabel="test error barrier", title="width sweep: barrier")
        axes[2].legend(fontsize=8)
    save(fig, "process_mnist1d.png")


def modular(store: Path) -> None:
    study = Study.open(store, "modular_addition")
    df = properties_over_steps(study)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    curves(axes[0], df, "train_acc", "C0", "train")
    curves(axes[0], df, "test_acc", "C1", "test")
    axes[0].set(title="accuracy", xlabel="step", ylim=(0, 1.02))
    axes[0].legend(fontsize=8)
    curves(axes[1], df, "fourier_eff_freqs", "C2", "effective number of frequencies")
    curves(axes[1], df, "n_key_freqs", "C3", "key frequencies (60% of power)")
    axes[1].set(title="Fourier structure of the embedding", xlabel="step", yscale="log")
    axes[1].legend(fontsize=8)
    last = df[df["step"] == df["step"].max()].set_index("run")
    freq_cols = sorted((c for c in df if c.startswith("freq_power/")), key=lambda c: int(c.split("/")[1]))
    power = last[freq_cols].to_numpy()  # (runs, K)
    im = axes[2].imshow(power, aspect="auto", cmap="viridis", interpolation="nearest",
                        extent=(0.5, len(freq_cols) + 0.5, len(last) - 0.5, -0.5))
    axes[2].set(title="final power share per frequency", xlabel="frequency k", ylabel="run")
    fig.colorbar(im, ax=axes[2], fraction=0.04)
    save(fig, "process_modular.png")


def bandit(store: Path) -> None:
    df = properties_over_steps(Study.open(store, "bandit"))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    curves(axes[0], df, "goal_rate", "C0", "goal rate (probe)")
    curves(axes[0], df, "train_reward", "C2", "expected reward (train)")
    axes[0].set(title="per run: goal or proxy", xlabel="step", ylim=(-0.02, 1.02), xscale="symlog", xlim=(0, None))
    axes[0].legend(fontsize=8)
    final = df[df["step"] == df["step"].max()]["goal_rate"]
    axes[1].hist(final, bins=20, range=(0, 1), color="C0")
    axes[1].set(title=f"final goal rate, {len(final)} runs", xlabel="goal rate (1: true goal, 0: proxy)", ylabel="runs")
    save(fig, "process_bandit.png")


def digits(store: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, name in zip(axes, ("digits_mlp", "digits_cnn")):
        df = properties_over_steps(Study.open(store, name))
        curves(ax, df, "test_acc", "C0", "test")
        curves(ax, df, "noisy_acc", "C1", "noisy")
        ax.set(title=f"{name}: accuracy per run", xlabel="step", ylim=(0, 1), xscale="symlog", xlim=(0, None))
        ax.legend(fontsize=8)
    save(fig, "process_digits.png")


def main(store: str) -> None:
    have = set(st.list_studies(Path(store)))
    needs = {mnist1d: {"mnist1d_mlp", "mnist1d_cnn"}, modular: {"modular_addition"},
             bandit: {"bandit"}, digits: {"digits_mlp", "digits_cnn"}}
    torch.set_num_threads(1)
    for draw, studies in needs.items():
        if studies <= have:
            draw(Path(store))
        else:
            print(f"skipping {draw.__name__}: store lacks {sorted(studies - have)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "pathdep-store")
