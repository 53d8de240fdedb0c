"""matplotlib on the Agg backend (files only, no display), imported lazily."""

from __future__ import annotations

from typing import Any


def pyplot() -> Any:
    """matplotlib.pyplot with the non-interactive Agg backend selected."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _as_display(grid: Any) -> Any:
    """[C, H, W] in [-1, 1] -> an array for imshow in [0, 1]: 2-D for grey, H x W x 3 for colour."""
    array = ((grid.clamp(-1, 1) + 1) / 2).numpy()
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def image_strip(images: Any) -> Any:
    """[N, C, H, W] images in [-1, 1] side by side, white lines between (for imshow with vmin=0, vmax=1)."""
    import torch

    padded = torch.nn.functional.pad(images.detach().float().cpu(), (0, 1), value=1.0)
    n, c, h, w = padded.shape
    return _as_display(padded.permute(1, 2, 0, 3).reshape(c, h, n * w))


def image_square(images: Any, side: int) -> Any:
    """The first side*side images [N, C, H, W] in [-1, 1] as a side x side grid, white lines between."""
    import torch

    padded = torch.nn.functional.pad(images[: side * side].detach().float().cpu(), (0, 1, 0, 1), value=1.0)
    _, c, h, w = padded.shape
    return _as_display(padded.reshape(side, side, c, h, w).permute(2, 0, 3, 1, 4).reshape(c, side * h, side * w))


def show_images(ax: Any, array: Any, title: str | None = None, ylabel: str | None = None, fontsize: int = 9) -> None:
    """Draw an image array without ticks, with an optional title and row label."""
    ax.imshow(array, cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=fontsize)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=fontsize)
