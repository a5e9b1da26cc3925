"""The digest chart: visits per week (bars) and the issue resolution rate (line), as a PNG."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def weekly_chart(labels: list[str], visits: list[int], rates: list[float | None], *, title: str, visits_label: str, rate_label: str) -> bytes:
    """Bars of visits and a line of resolution rate (%) over the weeks `labels`; PNG bytes."""
    fig = Figure(figsize=(8, 4), dpi=100)
    ax = fig.add_subplot()
    xs = list(range(len(labels)))
    ax.bar(xs, visits, color="#4C78A8", label=visits_label)
    ax.set_ylabel(visits_label)
    ax.set_xticks(xs, [label.split("-")[-1] for label in labels])
    ax2 = ax.twinx()
    points = [(x, r * 100) for x, r in zip(xs, rates, strict=True) if r is not None]
    if points:
        ax2.plot([p[0] for p in points], [p[1] for p in points], color="#F58518", marker="o", label=rate_label)
    ax2.set_ylim(0, 105)
    ax2.set_ylabel(rate_label + " %")
    ax.set_title(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close("all")
    return buf.getvalue()
