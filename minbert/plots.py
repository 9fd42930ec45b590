"""Train-vs-dev curves and gradient-conflict figures (notebooks 03-05, 08; "Figure 1").

    plot_history(history)               one run: per task, train (dashed) vs dev (solid)
    plot_conflict_history(history)      one run: conflict rate and mean cosine per task pair
    plot_figure1(history, title)        the seed's Figure 1: one model, large, labelled
    plot_overview(df, preset)           every row at README width: dev curves per task, gap
    plot_conflicts(df)                  every run's conflict rates, as a grid
    python -m minbert.plots curves RUN_DIR [RUN_DIR ...] -o fig.png

A history is the list train.run writes to RUN_DIR/history.json: per epoch, "train" and
"dev" metrics per task (and "conflict" per task pair). "train" numbers are those of the
training batches as they were seen (dropout on), so the gap to dev is the overfitting the
seed report's Figure 1 shows.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from .data import TASKS
from .metrics import METRIC

COLORS = dict(zip(TASKS, matplotlib.colormaps["tab10"].colors))


def _axes(n, axes, width=4.2, height=3.2, cols=3):
    if axes is not None:
        return None, list(axes)
    cols = min(n, cols)
    fig, grid = plt.subplots(-(-n // cols), cols, figsize=(width * cols, height * -(-n // cols)),
                             squeeze=False)
    for ax in grid.flat[n:]:
        ax.axis("off")
    return fig, list(grid.flat[:n])


def plot_history(history: list, axes=None, label: str = "", tasks=None, loss: bool = False,
                 gap: bool = True):
    """Per task one panel: train (dashed) and dev (solid) metric over epochs, the gap shaded;
    `loss=True` adds a panel of the train losses. Pass `axes` to draw into existing panels
    (e.g. two runs on one panel, told apart by `label`). Returns the figure."""
    tasks = [t for t in (tasks or TASKS) if t in history[0]["dev"]]
    fig, axes = _axes(len(tasks) + loss, axes)
    epochs = [e["epoch"] for e in history]
    prefix = f"{label}: " if label else ""
    for ax, t in zip(axes, tasks):
        m = METRIC[t]
        tr = [e["train"][t][m] for e in history]
        dv = [e["dev"][t][m] for e in history]
        line, = ax.plot(epochs, dv, "-o", ms=3, label=f"{prefix}{t} dev")
        ax.plot(epochs, tr, "--x", ms=4, color=line.get_color(), label=f"{prefix}{t} train")
        if gap:
            ax.fill_between(epochs, tr, dv, color=line.get_color(), alpha=0.12)
        ax.set(xlabel="epoch", ylabel=f"{t} {m}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    if loss:
        for t in tasks:
            axes[-1].plot(epochs, [e["train"][t]["loss"] for e in history], "-o", ms=3,
                          color=COLORS[t], label=f"{prefix}{t}")
        axes[-1].set(xlabel="epoch", ylabel="train loss")
        axes[-1].legend(fontsize=7)
    return (fig or axes[0].figure)


def plot_conflict_history(history: list, axes=None):
    """Left: share of rounds whose encoder gradients conflict (g_i . g_j < 0) per task pair;
    right: their mean cosine. Returns the figure."""
    fig, (ax0, ax1) = _axes(2, axes, width=5.5, height=3.5)
    epochs = [e["epoch"] for e in history]
    for pair in history[0]["conflict"]:
        ax0.plot(epochs, [e["conflict"][pair]["conflict_rate"] for e in history], "o-", label=pair)
        ax1.plot(epochs, [e["conflict"][pair]["mean_cosine"] for e in history], "o-", label=pair)
    ax0.set(xlabel="epoch", ylabel="share of rounds with g_i . g_j < 0", ylim=(-0.05, 1.05),
            title="conflicting encoder gradients")
    ax1.axhline(0, color="grey", lw=0.5)
    ax1.set(xlabel="epoch", ylabel="mean cosine", title="cosine of the task gradients")
    for ax in (ax0, ax1):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax0.legend(fontsize=7)
    return fig or ax0.figure


def _save(fig, path):
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    return fig


def run_title(r) -> str:
    return f"{r['preset']} row {r['row']} {r['name']} s{r['seed']}"


def plot_figure1(history: list, title: str, path=None, note: str = ""):
    """The seed's Figure 1 for one run: per task, train and dev metric at every point, big
    enough to read (1,500 px wide at 100 dpi); `note` says what the dev points are."""
    tasks = [t for t in TASKS if t in history[0]["dev"]]
    fig, axes = _axes(len(tasks), None, width=5.0, height=4.2)
    plot_history(history, axes=axes, tasks=tasks)
    for ax, t in zip(axes, tasks):
        ax.set_title(f"{t}: train vs dev {METRIC[t]}", fontsize=11)
        ax.legend(fontsize=9, loc="best")
    fig.suptitle(title + (f"\n{note}" if note else ""), fontsize=12)
    fig.tight_layout()
    return _save(fig, path)


def plot_overview(df, preset, path=None, seed=0):
    """Every trained row of a preset at README width (1,560 px): one panel per task with each
    row's dev curve (seed `seed`), then the final train - dev gap per row and task; the
    legend sits below the panels, off the data, in 11 pt: 12 px on a laptop, where the
    notebook shows the figure about 1,250 px wide."""
    runs = df[(df["preset"] == preset) & (df["seed"] == seed)] if len(df) else df
    runs = runs[[bool(h) for h in runs["history"]]] if len(runs) else runs
    fig, axes = plt.subplots(1, 4, figsize=(15.6, 5.4), layout="constrained")
    cmap = matplotlib.colormaps["tab20"]  # one colour per row, by row number
    for _, r in runs.iterrows():
        h = r["history"]
        for ax, t in zip(axes, TASKS):
            if t in h[0]["dev"]:
                ax.plot([e["epoch"] for e in h], [e["dev"][t][METRIC[t]] for e in h], "-o",
                        ms=2.5, color=cmap(int(r["row"]) % 20), label=f"{r['row']} {r['name']}")
    for ax, t in zip(axes, TASKS):
        ax.set(title=f"dev {t} {METRIC[t]} ({preset}, seed {seed})", xlabel="epoch")
    gaps = [(f"{r['row']}", {t: r["history"][-1]["train"][t][METRIC[t]]
                             - r["history"][-1]["dev"][t][METRIC[t]]
                             for t in TASKS if t in r["history"][-1]["dev"]})
            for _, r in runs.iterrows()]
    for j, t in enumerate(TASKS):
        xs = [i + (j - 1) * 0.27 for i, (_, g) in enumerate(gaps) if t in g]
        axes[3].bar(xs, [g[t] for _, g in gaps if t in g], width=0.27, color=COLORS[t], label=t)
    axes[3].axhline(0, color="grey", lw=0.5)
    axes[3].set(title="final train - dev gap", xlabel="row", xticks=range(len(gaps)),
                xticklabels=[name for name, _ in gaps])
    axes[3].legend(fontsize=10)
    seen = {}  # every row once, whichever panel it is drawn in
    for ax in axes[:3]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    labels = sorted(seen, key=lambda lab: int(lab.split()[0]))
    handles = [seen[lab] for lab in labels]
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 5) or 1,
               fontsize=11)
    return _save(fig, path)


def plot_conflicts(df, path=None, cols: int = 4):
    """Per run that logged it, the conflict rate per task pair over epochs, as a grid
    (4 columns: 1,560 px wide at 100 dpi)."""
    runs = df[[bool(c) for c in df["conflict"]]] if len(df) else df
    fig, axes = _axes(max(len(runs), 1), None, width=3.9, cols=cols)
    for ax, (_, r) in zip(axes, runs.iterrows()):
        epochs = [c["epoch"] for c in r["conflict"]]
        for pair in (k for k in r["conflict"][0] if k != "epoch"):
            ax.plot(epochs, [c[pair]["conflict_rate"] for c in r["conflict"]], "-o", label=pair)
        ax.set(ylim=(0, 1), xlabel="epoch", ylabel="conflict rate", title=run_title(r))
        ax.title.set_fontsize(9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    if not len(runs):
        axes[0].text(0.5, 0.5, "no run logged conflicts", ha="center")
    fig.tight_layout()
    return _save(fig, path)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minbert.plots", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("curves", help="train vs dev per task of run folders (history.json)")
    c.add_argument("runs", nargs="+", type=Path, help="run folders written by minbert.train")
    c.add_argument("-o", "--out", type=Path, required=True, help="image file (.png, .pdf, ...)")
    a = p.parse_args(argv)
    histories = {}
    for run in a.runs:
        f = run / "history.json"
        if not f.is_file():
            p.error(f"{f}: not found; expected a run folder written by python -m minbert.train")
        histories[run.name] = json.loads(f.read_text())
    tasks = [t for t in TASKS if any(t in h[0]["dev"] for h in histories.values())]
    fig, axes = _axes(len(tasks), None, width=5, height=3.8)
    for name, h in histories.items():
        present = [t for t in tasks if t in h[0]["dev"]]
        plot_history(h, axes=[axes[tasks.index(t)] for t in present], tasks=present,
                     label=name if len(histories) > 1 else "", gap=len(histories) == 1)
    fig.tight_layout()
    _save(fig, a.out)
    print(a.out)


if __name__ == "__main__":
    main()
