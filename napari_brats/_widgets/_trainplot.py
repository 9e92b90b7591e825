"""Live plot of training loss (per step) and validation Dice (per epoch) for the Training dock."""

from __future__ import annotations

from typing import Any

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

from bratseg.labels import LABEL_COLORS

#: Line colour per region (WT drawn in the ED colour, TC in the NCR colour, ET in the ET colour).
REGION_COLORS = {
    "wt": LABEL_COLORS["ed"][:3],
    "tc": LABEL_COLORS["ncr"][:3],
    "et": LABEL_COLORS["et"][:3],
}


class TrainingPlot(FigureCanvasQTAgg):
    """Two stacked axes: loss versus step, validation Dice (WT/TC/ET) versus epoch."""

    def __init__(self) -> None:
        self.figure = Figure(figsize=(4.0, 3.2), tight_layout=True)
        super().__init__(self.figure)
        self.loss_ax = self.figure.add_subplot(2, 1, 1)
        self.dice_ax = self.figure.add_subplot(2, 1, 2)
        self.clear()

    def clear(self) -> None:
        """Forget all points."""
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.epochs: list[int] = []
        self.dice: dict[str, list[float]] = {r: [] for r in REGION_COLORS}
        self._redraw()

    def add_event(self, event: dict[str, Any]) -> None:
        """Add a trainer event (``step`` adds a loss point, ``epoch`` a Dice point)."""
        kind = event.get("event")
        if kind == "step" and event.get("loss") is not None:
            self.steps.append(int(event.get("step", len(self.steps) + 1)))
            self.losses.append(float(event["loss"]))
        elif kind == "epoch" and event.get("val_dice"):
            self.epochs.append(int(event.get("epoch", len(self.epochs) + 1)))
            for region in REGION_COLORS:
                self.dice[region].append(float(event["val_dice"].get(region, float("nan"))))
        else:
            return
        self._redraw()

    def _redraw(self) -> None:
        self.loss_ax.clear()
        self.loss_ax.set_ylabel("loss")
        self.loss_ax.set_xlabel("step")
        if self.steps:
            self.loss_ax.plot(self.steps, self.losses, color="0.3", lw=1)
        self.dice_ax.clear()
        self.dice_ax.set_ylabel("val Dice")
        self.dice_ax.set_xlabel("epoch")
        self.dice_ax.set_ylim(0.0, 1.0)
        for region, color in REGION_COLORS.items():
            if self.epochs:
                self.dice_ax.plot(
                    self.epochs, self.dice[region], "o-", color=color, label=region.upper(), ms=3
                )
        if self.epochs:
            self.dice_ax.legend(loc="lower right", fontsize="small")
        self.draw_idle()
