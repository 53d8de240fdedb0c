"""Building blocks of the StyleGAN2-ADA networks: bias + activation, equalized-lr layers, modulated conv.

Every layer keeps its weights unscaled and multiplies by a constant gain at run time (equalized
learning rate), so parameter tensors are exactly those of NVlabs' pickles.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sphere_stylegan2.resample import conv2d_resample, setup_filter


@dataclass(frozen=True)
class Activation:
    """An activation function with its default shape parameter and the gain that keeps unit variance.

    `inplace` (optional) computes the same values by overwriting its argument, which saves a full-size
    allocation per layer when nothing needs the input afterwards (inference).
    """

    func: Callable[[Tensor, float], Tensor]
    alpha: float
    gain: float
    inplace: Callable[[Tensor, float], Tensor] | None = None


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, a: x, 0.0, 1.0, lambda x, a: x),
    "relu": Activation(lambda x, a: F.relu(x), 0.0, math.sqrt(2), lambda x, a: F.relu_(x)),
    "lrelu": Activation(lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2), lambda x, a: F.leaky_relu_(x, a)),
    "tanh": Activation(lambda x, a: torch.tanh(x), 0.0, 1.0, lambda x, a: x.tanh_()),
    "sigmoid": Activation(lambda x, a: torch.sigmoid(x), 0.0, 1.0, lambda x, a: x.sigmoid_()),
    "elu": Activation(lambda x, a: F.elu(x), 0.0, 1.0, lambda x, a: F.elu_(x)),
    "selu": Activation(lambda x, a: F.selu(x), 0.0, 1.0, lambda x, a: F.selu_(x)),
    "softplus": Activation(lambda x, a: F.softplus(x), 0.0, 1.0),
    "swish": Activation(lambda x, a: torch.sigmoid(x) * x, 0.0, math.sqrt(2)),
}


def get_activation(name: str) -> Activation:
    """The activation called `name`, or a ValueError listing the known ones."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def may_overwrite(x: Tensor) -> bool:
    """Whether a freshly computed intermediate `x` can be updated in place: autograd does not track it."""
    return not (torch.is_grad_enabled() and x.requires_grad)


def bias_act(x: Tensor, b: Tensor | None = None, dim: int = 1, act: str = "linear", alpha: float | None = None,
             gain: float | None = None, clamp: float | None = None, inplace: bool = False) -> Tensor:
    """Add bias `b` along `dim`, apply the activation, scale by `gain` (default: its own), clamp to +-clamp.

    inplace=True lets the layers overwrite their own fresh outputs when autograd does not track them
    (same values, fewer full-size temporaries); callers must never pass a tensor someone else holds.
    """
    spec = get_activation(act)
    alpha = float(spec.alpha if alpha is None else alpha)
    gain = float(spec.gain if gain is None else gain)
    if inplace and spec.inplace is not None and may_overwrite(x):
        if b is not None:
            x.add_(b.reshape([-1 if i == dim else 1 for i in range(x.dim())]))
        x = spec.inplace(x, alpha)
        if gain != 1:
            x.mul_(gain)
        if clamp is not None and clamp >= 0:
            x.clamp_(-clamp, clamp)
        return x
    if b is not None:
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.dim())])
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def normalize_2nd_moment(x: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """Scale each vector to root-mean-square 1 (the mapping network's input normalization)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def records_init(cls: type) -> type:
    """Class decorator: remember the constructor's arguments, as NVlabs' pickles store them to rebuild a module."""
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self._init_args = copy.deepcopy(args)
        self._init_kwargs = copy.deepcopy(kwargs)

    cls.__init__ = __init__
    return cls


def demodulation_coefficients(weight: Tensor, styles: Tensor) -> Tensor:
    """[N, O]: 1 / the L2 norm of each sample's modulated filter, weight[o, i] * styles[n, i].

    The squared norm is sum_i styles[n, i]^2 * sum_k weight[o, i, k]^2, one small matrix product,
    so no [N, O, I, k, k] temporary is built just to be squared and summed.
    """
    return (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()


def _add_noise(x: Tensor, noise: Tensor | None) -> Tensor:
    """x + noise, in place when x is a fresh intermediate autograd does not track."""
    if noise is None:
        return x
    noise = noise.to(x.dtype)
    return x.add_(noise) if may_overwrite(x) else x + noise


def modulated_conv2d(x: Tensor, weight: Tensor, styles: Tensor, noise: Tensor | None = None, up: int = 1,
                     down: int = 1, padding: int = 0, resample_filter: Tensor | None = None,
                     demodulate: bool = True, flip_weight: bool = True, fused_modconv: bool = True) -> Tensor:
    """Convolution whose input channels are scaled per sample by `styles`, output renormalized (demodulated).

    fused_modconv=True builds one weight per sample and runs a grouped convolution; False scales
    the activations before and after a shared convolution instead (same result, other trade-offs).
    """
    batch = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    if x.dtype == torch.float16 and demodulate:  # pre-normalize so fp16 cannot overflow
        weight = weight * (1 / math.sqrt(in_channels * kh * kw)
                           / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
    dcoefs = demodulation_coefficients(weight, styles) if demodulate else None

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
                            flip_weight=flip_weight)
        if demodulate and noise is not None:  # one rounding for x * d + noise
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(batch, -1, 1, 1))
        if demodulate:
            d = dcoefs.to(x.dtype).reshape(batch, -1, 1, 1)
            x = x.mul_(d) if may_overwrite(x) else x * d
        return _add_noise(x, noise)

    scale = styles.reshape(batch, 1, in_channels)  # [N, 1, I], then [N, O, I] with the demodulation folded in
    if demodulate:
        scale = scale * dcoefs.reshape(batch, out_channels, 1)
    w = weight.unsqueeze(0) * scale.reshape(*scale.shape, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, groups=batch,
                        flip_weight=flip_weight)
    x = x.reshape(batch, -1, *x.shape[2:])
    return _add_noise(x, noise)


@records_init
class FullyConnectedLayer(nn.Module):
    """Linear layer with equalized learning rate and an optional fused activation."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1, bias_init: float = 0):
        super().__init__()
        get_activation(activation)
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation, inplace=True)

    def extra_repr(self) -> str:
        return f"in={self.weight.shape[1]}, out={self.weight.shape[0]}, activation={self.activation}"


@records_init
class Conv2dLayer(nn.Module):
    """Convolution with equalized learning rate, optional FIR up/downsampling, activation and clamp."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1,
                 resample_filter: Sequence[float] = (1, 3, 3, 1), conv_clamp: float | None = None,
                 channels_last: bool = False, trainable: bool = True):
        super().__init__()
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.act_gain = get_activation(activation).gain
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        bias_value = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = nn.Parameter(weight)
            self.bias = nn.Parameter(bias_value) if bias_value is not None else None
        else:
            self.register_buffer("weight", weight)
            if bias_value is not None:
                self.register_buffer("bias", bias_value)
            else:
                self.bias = None

    def forward(self, x: Tensor, gain: float = 1) -> Tensor:
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = conv2d_resample(x, w.to(x.dtype), f=self.resample_filter, up=self.up, down=self.down,
                            padding=self.padding, flip_weight=(self.up == 1))
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=clamp, inplace=True)

    def extra_repr(self) -> str:
        return (f"in={self.weight.shape[1]}, out={self.weight.shape[0]}, kernel={self.weight.shape[2]}, "
                f"up={self.up}, down={self.down}, activation={self.activation}")
