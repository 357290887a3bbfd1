"""PNG figures of a training run: loss and accuracy curves per epoch, and the confusion matrix.

matplotlib is an optional dependency (`pip install "emodetect[plots]"`). Figures are drawn with its
object-oriented API on the Agg canvas, so plotting never switches the backend of the caller's pyplot.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

History = Mapping[str, Sequence[float]]

DPI = 100


def _new_figure(width: float, height: float) -> "Figure":
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            'Plotting needs the matplotlib package, which is not installed. Install it with: pip install "emodetect[plots]"'
        ) from None

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: "Figure", path: Union[str, "os.PathLike[str]"]) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"Expected a figure path ending with '.png', received '{path}'.")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    logger.info("Wrote figure %s", path)
    return path


def plot_history(
    history: Union[History, Mapping[str, History]],
    path: Union[str, "os.PathLike[str]"],
    title: str = "",
) -> Path:
    """Draw the loss and accuracy per epoch, training and validation, side by side.

    Args:
        history: One run's per-epoch values as `TrainingResult.history` or Keras' `History.history`
            returns them (`loss`, `accuracy`, `val_loss`, `val_accuracy`), or several runs as a mapping from
            a run label (such as `"seed 0"`) to such a history. Training values are drawn dashed, validation
            values solid, one colour per run.
        path: Output `.png` file; its folder is created.
        title: Figure title.

    Returns:
        The path written.

    Raises:
        ImportError: matplotlib is not installed.
        ValueError: A history has no `loss`, or the path does not end with `.png`.
    """
    runs = _as_runs(history)
    figure = _new_figure(9.0, 3.4)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    colours = [f"C{index % 10}" for index in range(len(runs))]

    for (label, run), colour in zip(runs.items(), colours):
        prefix = f"{label}: " if len(runs) > 1 else ""
        for axes, metric in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
            for split, style in (("", "--"), ("val_", "-")):
                values = run.get(split + metric)
                if not values:
                    continue
                epochs = np.arange(1, len(values) + 1)
                name = "validation" if split else "training"
                axes.plot(epochs, values, style, color=colour, linewidth=1.4, label=f"{prefix}{name}")

    loss_axes.set(xlabel="epoch", ylabel="loss", title="Loss")
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy", title="Accuracy", ylim=(0.0, 1.02))
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.xaxis.get_major_locator().set_params(integer=True)
    accuracy_axes.legend(fontsize=7, loc="lower right", ncol=2 if len(runs) > 2 else 1)
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def _as_runs(history: Union[History, Mapping[str, History]]) -> dict[str, History]:
    if "loss" in history:
        return {"": history}  # type: ignore[dict-item]
    runs: dict[str, History] = {}
    for label, run in history.items():
        if not isinstance(run, Mapping) or "loss" not in run:
            raise ValueError(
                f"Expected a training history with a 'loss' list, or a mapping of run labels to such histories; "
                f"received keys {sorted(history)}."
            )
        runs[str(label)] = run
    if not runs:
        raise ValueError("Expected a training history with a 'loss' list, received an empty mapping.")
    return runs


def plot_confusion_matrix(
    report: Mapping[str, Any],
    path: Union[str, "os.PathLike[str]"],
    title: str = "",
) -> Path:
    """Draw a confusion matrix with counts and row percentages (the recall of each true class).

    Args:
        report: A dict with `confusion_matrix` (rows true classes, columns predicted) and `class_names`, as
            returned by `emodetect.metrics.classification_report` and `evaluate_arrays`.
        path: Output `.png` file; its folder is created.
        title: Figure title; the accuracy and the number of faces are added below it.

    Returns:
        The path written.

    Raises:
        ImportError: matplotlib is not installed.
        ValueError: The report has no confusion matrix, or the path does not end with `.png`.
    """
    if "confusion_matrix" not in report or "class_names" not in report:
        raise ValueError(
            f"Expected a report with 'confusion_matrix' and 'class_names', received keys {sorted(report)}."
        )
    matrix = np.asarray(report["confusion_matrix"], dtype=np.int64)
    names = list(report["class_names"])
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, np.maximum(totals, 1), dtype=np.float64)

    side = 2.2 + 0.7 * len(names)
    figure = _new_figure(side + 0.8, side)
    axes = figure.subplots()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, label="share of the true class")
    for row in range(len(names)):
        for column in range(len(names)):
            colour = "white" if shares[row, column] > 0.6 else "black"
            text = f"{matrix[row, column]}\n{100 * shares[row, column]:.0f}%"
            axes.text(column, row, text, ha="center", va="center", color=colour, fontsize=9)

    axes.set_xticks(range(len(names)), names, rotation=45 if len(names) > 3 else 0)
    axes.set_yticks(range(len(names)), names)
    axes.set(xlabel="predicted class", ylabel="true class")
    count = int(matrix.sum())
    accuracy = float(np.trace(matrix) / count) if count else 0.0
    subtitle = f"accuracy {accuracy:.3f} on {count} faces"
    axes.set_title(f"{title}\n{subtitle}" if title else subtitle, fontsize=10)
    return _save(figure, path)


def save_training_plots(
    folder: Union[str, "os.PathLike[str]"],
    history: Optional[History] = None,
    report: Optional[Mapping[str, Any]] = None,
    title: str = "",
) -> list[Path]:
    """Write `curves.png` from a history and `confusion.png` from a report, each when given.

    Args:
        folder: Output folder; it is created.
        history: Per-epoch values, as for `plot_history`, or `None`.
        report: An evaluation report, as for `plot_confusion_matrix`, or `None`.
        title: Title of both figures.

    Returns:
        The paths written.

    Raises:
        ImportError: matplotlib is not installed.
    """
    folder = Path(folder)
    written = []
    if history:
        written.append(plot_history(history, folder / "curves.png", title=title))
    if report:
        written.append(plot_confusion_matrix(report, folder / "confusion.png", title=title))
    return written
