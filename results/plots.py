"""Server-side figures as SVG text (matplotlib, no display needed)."""

from __future__ import annotations

import io
import textwrap

import matplotlib
import numpy as np

matplotlib.use("Agg")  # before pyplot: render to files only
# The same data draws the same SVG (element ids from a fixed salt, no creation date), so a page can be
# compared, cached or archived.
matplotlib.rcParams["svg.hashsalt"] = "debate-platform"
import matplotlib.pyplot as plt  # noqa: E402


def _svg(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]  # drop the XML prolog so it can be inlined in HTML


def interval_bars(estimates: dict, *, title: str, ylabel: str, reference: float | None = None) -> str:
    """One bar per group with its 95% interval; ``estimates`` maps label -> analysis.Estimate."""
    labels = [str(k) for k in estimates]
    values = [e.value for e in estimates.values()]
    # An estimate without an interval gets no error bar (not a negative or NaN one).
    errors = np.nan_to_num(
        [[e.value - e.low for e in estimates.values()], [e.high - e.value for e in estimates.values()]]
    ).clip(min=0)
    fig, ax = plt.subplots(figsize=(max(3.5, 1.4 * len(labels) + 1.5), 3.2))
    ax.bar(labels, values, yerr=errors, capsize=6, color="#2f6fb0", alpha=0.85)
    for i, e in enumerate(estimates.values()):
        ax.annotate(f"n={e.n}", (i, 0.02), ha="center", color="white", fontsize=8)
    if reference is not None:
        ax.axhline(reference, color="#888", linestyle="--", linewidth=1)
    # Long labels (arms and conditions) slanted so neighbours never overlap.
    ax.set_xticks(range(len(labels)), [textwrap.fill(label, 18) for label in labels], rotation=25, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _svg(fig)


def reliability_diagram(calibration: dict, *, title: str) -> str:
    bins = calibration["bins"]
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0.5, 1], [0.5, 1], color="#888", linestyle="--", linewidth=1, label="perfect calibration")
    x = [b["confidence"] for b in bins]
    y = [b["accuracy"] for b in bins]
    errors = [[b["accuracy"] - b["accuracy_low"] for b in bins], [b["accuracy_high"] - b["accuracy"] for b in bins]]
    ax.errorbar(x, y, yerr=errors, fmt="o-", capsize=4, color="#1d6f42", label="judges")
    for b in bins:
        ax.annotate(
            f"n={b['n']}", (b["confidence"], b["accuracy"]), textcoords="offset points", xytext=(5, -12), fontsize=8
        )
    ax.set_xlim(0.45, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("stated probability of chosen answer")
    ax.set_ylabel("share of verdicts correct")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return _svg(fig)
