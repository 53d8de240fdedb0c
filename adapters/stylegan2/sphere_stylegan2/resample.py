"""FIR resampling of 2-D images (pad, upsample, filter, downsample) and convolution with resampling.

Semantics follow StyleGAN2-ADA's conventions so that trained weights reproduce their images:
`upfirdn2d` inserts zeros to upsample, pads (negative = crop), convolves with the FIR filter and
keeps every `down`-th pixel; `conv2d_resample` folds the filter into a convolution, padding once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

Padding = int | Sequence[int]


def setup_filter(taps: Sequence[float] | Tensor | None, normalize: bool = True, flip_filter: bool = False,
                 gain: float = 1.0, separable: bool | None = None) -> Tensor:
    """A float32 FIR filter: the outer product of `taps` (unless kept separable), summing to 1."""
    f = torch.as_tensor(1.0 if taps is None else taps, dtype=torch.float32).clone()
    if f.dim() == 0:
        f = f.reshape(1)
    if f.dim() not in (1, 2) or f.numel() == 0:
        raise ValueError(f"resample_filter must be a non-empty 1-D or 2-D list of taps, got shape {tuple(f.shape)}")
    if separable is None:
        separable = f.dim() == 1 and f.numel() >= 8
    if f.dim() == 1 and not separable:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.dim())))
    return f * (gain ** (f.dim() / 2))


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v >= 1 for v in pair):
        raise ValueError(f"{name} must be a positive int or a pair of them, got {value!r}")
    return pair


def _padding4(padding: Padding) -> tuple[int, int, int, int]:
    """(x_before, x_after, y_before, y_after) from an int, an (x, y) pair or four ints."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = tuple(int(p) for p in padding)
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    if len(padding) == 4:
        return padding
    raise ValueError(f"padding must be an int, (x, y) or (x0, x1, y0, y1), got {padding!r}")


def filter_size(f: Tensor | None) -> tuple[int, int]:
    """(width, height) of a 1-D or 2-D FIR filter; (1, 1) for None."""
    if f is None:
        return 1, 1
    return int(f.shape[-1]), int(f.shape[0])


def _insert_zeros(x: Tensor, up_x: int, up_y: int) -> Tensor:
    """Upsample by placing each pixel at the top-left of an up_y x up_x cell of zeros."""
    if up_x == 1 and up_y == 1:
        return x
    n, c, h, w = x.shape
    cells = x.new_zeros(n, c, h, up_y, w, up_x)
    cells[:, :, :, 0, :, 0] = x
    return cells.reshape(n, c, h * up_y, w * up_x)


def upfirdn2d(x: Tensor, f: Tensor | None, up: int | Sequence[int] = 1, down: int | Sequence[int] = 1,
              padding: Padding = 0, flip_filter: bool = False, gain: float = 1.0) -> Tensor:
    """Upsample by zero insertion, pad (or crop), convolve with FIR filter `f`, then subsample."""
    up_x, up_y = _pair(up, "up")
    down_x, down_y = _pair(down, "down")
    px0, px1, py0, py1 = _padding4(padding)
    x = _insert_zeros(x, up_x, up_y)
    conv_pad = (0, 0)
    if px0 == px1 >= 0 and py0 == py1 >= 0:  # the convolution zero-pads itself: no padded copy of x
        conv_pad = (py0, px0)
    else:
        x = F.pad(x, [px0, px1, py0, py1])
    if f is None:
        f = torch.ones(1, 1, dtype=torch.float32, device=x.device)
    channels = x.shape[1]
    kernel = (f * (gain ** (f.dim() / 2))).to(x.dtype)
    if not flip_filter:
        kernel = kernel.flip(list(range(kernel.dim())))
    if kernel.dim() == 2:
        x = F.conv2d(x, kernel.expand(channels, 1, *kernel.shape), padding=conv_pad, groups=channels)
    else:
        taps = kernel.numel()
        x = F.conv2d(x, kernel.reshape(1, 1, 1, taps).expand(channels, 1, 1, taps), padding=(0, conv_pad[1]),
                     groups=channels)
        x = F.conv2d(x, kernel.reshape(1, 1, taps, 1).expand(channels, 1, taps, 1), padding=(conv_pad[0], 0),
                     groups=channels)
    return x[:, :, ::down_y, ::down_x]


def upsample2d(x: Tensor, f: Tensor, up: int = 2, padding: Padding = 0, gain: float = 1.0) -> Tensor:
    """Upsample by `up` with filter `f`, padded so the output is exactly `up` times larger."""
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = _padding4(padding)
    pad = [px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2, py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2]
    return upfirdn2d(x, f, up=up, padding=pad, gain=gain * up * up)


def downsample2d(x: Tensor, f: Tensor, down: int = 2, padding: Padding = 0, gain: float = 1.0) -> Tensor:
    """Downsample by `down` with filter `f`, padded so the output is exactly `down` times smaller."""
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = _padding4(padding)
    pad = [px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2, py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2]
    return upfirdn2d(x, f, down=down, padding=pad, gain=gain)


def _conv(x: Tensor, w: Tensor, stride: int = 1, padding: Sequence[int] = (0, 0), groups: int = 1,
          transpose: bool = False, flip_weight: bool = True) -> Tensor:
    """conv2d (correlation when flip_weight, true convolution otherwise) or its transpose."""
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=list(padding), groups=groups)
    return F.conv2d(x, w, stride=stride, padding=list(padding), groups=groups)


def conv2d_resample(x: Tensor, w: Tensor, f: Tensor | None = None, up: int = 1, down: int = 1,
                    padding: Padding = 0, groups: int = 1, flip_weight: bool = True,
                    flip_filter: bool = False) -> Tensor:
    """Convolve `x` with `w`, upsampling or downsampling with FIR filter `f`; padding is applied once."""
    out_channels, in_per_group, kh, kw = (int(s) for s in w.shape)
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = _padding4(padding)
    if up > 1:
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    pad = [px0, px1, py0, py1]

    if kw == 1 and kh == 1 and down > 1 and up == 1:  # 1x1: filter and subsample first, then the cheap conv
        x = upfirdn2d(x, f, down=down, padding=pad, flip_filter=flip_filter)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:  # 1x1: conv at low resolution, then upsample
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=pad, gain=up ** 2, flip_filter=flip_filter)
    if down > 1 and up == 1:  # filter, then a strided conv does the subsampling
        x = upfirdn2d(x, f, padding=pad, flip_filter=flip_filter)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)
    if up > 1:  # a strided transposed conv does the zero insertion and the conv in one step
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
            w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
        px0, px1, py0, py1 = px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)
        pxt, pyt = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
        x = _conv(x, w, stride=up, padding=(pyt, pxt), groups=groups, transpose=True, flip_weight=not flip_weight)
        x = upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up ** 2,
                      flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=(py0, px0), groups=groups, flip_weight=flip_weight)
    x = upfirdn2d(x, None, padding=pad)
    x = _conv(x, w, groups=groups, flip_weight=flip_weight)
    return x if down == 1 else upfirdn2d(x, f, down=down, flip_filter=flip_filter)
