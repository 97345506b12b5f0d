"""Training figures written beside the model: curves, confusion matrix, sweep comparison (PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from listing_search.pipeline import atomic_path  # noqa: E402


def _save(fig: "plt.Figure", path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_curves(history: list[dict], path: Path, title: str) -> None:
    """Loss and accuracy per epoch, train and validation side by side."""
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in (("train_loss", "train"), ("val_loss", "val")):
        ax_loss.plot(epochs, [h[key] for h in history], marker=".", label=label)
    for key, label in (("train_accuracy", "train"), ("val_accuracy", "val")):
        ax_acc.plot(epochs, [h[key] for h in history], marker=".", label=label)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title=f"{title}: loss")
    ax_acc.set(xlabel="epoch", ylabel="image accuracy", title=f"{title}: accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, path)


def plot_confusion(y_true: np.ndarray, y_pred: np.ndarray, categories: list[str], path: Path) -> None:
    """Row-normalised confusion matrix of the validation photos."""
    n = len(categories)
    counts = np.zeros((n, n), np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(0.6 * n + 4, 0.6 * n + 3))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if counts[i, j]:
                ax.text(j, i, f"{share[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), categories, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), categories, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title="validation confusion (row-normalised)")
    _save(fig, path)


def plot_sweep(runs: dict[str, list[dict]], path: Path) -> None:
    """Validation accuracy and loss of every swept configuration on one figure."""
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(12, 4))
    for name, history in runs.items():
        epochs = [h["epoch"] for h in history]
        ax_acc.plot(epochs, [h["val_accuracy"] for h in history], marker=".", label=name)
        ax_loss.plot(epochs, [h["val_loss"] for h in history], marker=".", label=name)
    ax_acc.set(xlabel="epoch", ylabel="val image accuracy", title="sweep: validation accuracy")
    ax_loss.set(xlabel="epoch", ylabel="val cross-entropy", title="sweep: validation loss")
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, path)
