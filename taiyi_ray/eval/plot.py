"""scores.png: a grouped bar chart of ours beside the published columns, one group per set.

Drawn on a `Figure` with the Agg canvas directly (no pyplot): no global figure state, no display
needed, safe in Ray workers and tests. A missing or unscored set keeps its place with the word
"missing" where our bar would be.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

OURS = "ours"
MAJORITY = "majority baseline"
COLOURS = ("#1f77b4", "#c7c7c7", "#ff7f0e", "#2ca02c", "#7f7f7f", "#9467bd")


def scores_png(
    set_names: Sequence[str], columns: Mapping[str, Mapping[str, float | None]], title: str
) -> bytes:
    """PNG bytes: for each set a bar per column (`columns[column][set]`, percent; None = no bar)."""
    figure = Figure(figsize=(max(8.0, 1.1 * len(set_names) + 2), 5.0), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    width = 0.8 / max(1, len(columns))
    for offset, (column, values) in enumerate(columns.items()):
        positions = [index + (offset - (len(columns) - 1) / 2) * width for index in range(len(set_names))]
        heights = [values.get(name) for name in set_names]
        axes.bar(
            [p for p, h in zip(positions, heights, strict=True) if h is not None],
            [h for h in heights if h is not None],
            width=width,
            label=column,
            color=COLOURS[offset % len(COLOURS)],
        )
        if column == OURS:
            for position, height in zip(positions, heights, strict=True):
                if height is None:
                    axes.text(position, 2, "missing", rotation=90, ha="center", va="bottom", fontsize=7)
    axes.set_xticks(range(len(set_names)))
    axes.set_xticklabels(set_names, rotation=35, ha="right", fontsize=8)
    axes.set_ylim(0, 105)
    axes.set_ylabel("score (%)")
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8, ncols=min(4, len(columns)))
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
