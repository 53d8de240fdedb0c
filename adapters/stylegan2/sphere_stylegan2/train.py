"""A compact StyleGAN2 training loop: non-saturating logistic loss, lazy R1 penalty, EMA of G.

Runs on the CPU, on CUDA, and over several processes through `accelerate` (one code path: the
accelerator gives the device, the process rank and a gradient all-reduce; modules are not wrapped,
because the R1 penalty's double backward does not mix well with DistributedDataParallel).
Randomness is re-seeded from (seed, step, rank) at every step, so a run resumed from a checkpoint
continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sphere_plugins import checkpoint
from sphere_plugins.latent import SphericalLatent
from sphere_plugins.priors import sample_prior
from sphere_plugins.training.loop import make_accelerator as training_accelerator
from sphere_stylegan2.generator import labels as as_labels

LATENTS = ("normal", "spherical")


@dataclass
class GANTrainResult:
    """What train_gan returns: the trained networks and one record per step (losses; r1 on regularization steps)."""

    G: nn.Module
    D: nn.Module
    G_ema: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int = 0


class _SingleProcess:
    """The few accelerator features the loop uses, for when `accelerate` is not installed."""

    def __init__(self, device: torch.device | str | None):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.process_index = 0
        self.num_processes = 1
        self.is_main_process = True

    def reduce(self, tensor: Tensor, reduction: str = "mean") -> Tensor:
        return tensor

    def wait_for_everyone(self) -> None:
        return None


def gan_accelerator(device: torch.device | str | None = None) -> Any:
    """accelerate.Accelerator (on the CPU when device='cpu'), or a single-process stand-in without accelerate."""
    try:
        import accelerate  # noqa: F401  (only to learn whether it is installed)
    except ImportError:
        return _SingleProcess(device)
    return training_accelerator(cpu=device is not None and torch.device(device).type == "cpu")


def _step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 7_919 + rank * 104_729) % (2 ** 63)


def ema_beta(batch_size: int, images_seen: int, ema_kimg: float, ema_rampup: float | None) -> float:
    """StyleGAN's EMA decay: half-life of ema_kimg thousand images, shortened early by the ramp-up."""
    ema_nimg = ema_kimg * 1000
    if ema_rampup is not None:
        ema_nimg = min(ema_nimg, images_seen * ema_rampup)
    return 0.5 ** (batch_size / max(ema_nimg, 1e-8))


@torch.no_grad()
def update_ema(G_ema: nn.Module, G: nn.Module, beta: float) -> None:
    """G_ema <- beta * G_ema + (1 - beta) * G for parameters; buffers (w_avg, noise) are copied."""
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


def r1_penalty(D: nn.Module, real: Tensor, c: Tensor | None) -> Tensor:
    """Per-sample squared gradient norm of D's logits with respect to real images."""
    real = real.detach().requires_grad_(True)
    logits = D(real, c)
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    return grad.square().sum(dim=[1, 2, 3])


def _all_reduce_grads(accelerator: Any, params: Iterable[nn.Parameter]) -> None:
    params = [p for p in params if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    flat = accelerator.reduce(flat, reduction="mean")
    offset = 0
    for p in params:
        p.grad.copy_(flat[offset:offset + p.numel()].view_as(p.grad))
        offset += p.numel()


@torch.no_grad()
def _broadcast_from_main(accelerator: Any, modules: Iterable[nn.Module]) -> None:
    """Give every process the main process's weights and buffers (so each rank starts identical)."""
    if accelerator.num_processes == 1:
        return
    for module in modules:
        for tensor in (*module.parameters(), *module.buffers()):
            torch.distributed.broadcast(tensor.data, src=0)


def save_training_checkpoint(folder: Path, step: int, nets: dict[str, nn.Module], opt_G: torch.optim.Optimizer,
                             opt_D: torch.optim.Optimizer, keep: int = 2) -> Path:
    """G, D, G_ema and both optimizers at `step`, in the project's atomic checkpoint format."""
    d_tensors, d_meta = checkpoint.flatten_optimizer_state(opt_D.state_dict())
    return checkpoint.save_checkpoint(folder, step, nn.ModuleDict(nets), opt_G, state={"opt_D": d_meta},
                                      tensors={f"opt_D/{k}": v.cpu() for k, v in d_tensors.items()}, keep=keep)


def load_training_checkpoint(path: Path, nets: dict[str, nn.Module], opt_G: torch.optim.Optimizer,
                             opt_D: torch.optim.Optimizer) -> int:
    """Restore networks and optimizers from the checkpoint folder `path`; returns its step."""
    saved = checkpoint.load_checkpoint(path)
    saved.load_model(nn.ModuleDict(nets))
    opt_G.load_state_dict(saved.optimizer_state)
    d_tensors = {k[len("opt_D/"):]: v for k, v in saved.tensors.items() if k.startswith("opt_D/")}
    opt_D.load_state_dict(checkpoint.unflatten_optimizer_state(d_tensors, saved.state["opt_D"]))
    return saved.step


def _check_data(images: Tensor, G: nn.Module, labels: Tensor | None) -> None:
    expected = (G.img_channels, G.img_resolution, G.img_resolution)
    if not isinstance(images, Tensor) or images.dim() != 4 or tuple(images.shape[1:]) != expected:
        got = list(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor [N, {', '.join(map(str, expected))}] in [-1, 1], got {got}")
    if labels is not None and (not isinstance(labels, Tensor) or labels.shape[0] != images.shape[0]):
        raise ValueError(f"labels must be a tensor with one row per image ({images.shape[0]}), got "
                         f"{list(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__}")
    if G.c_dim > 0 and labels is None:
        raise ValueError(f"labels must be given to train a conditional generator (c_dim={G.c_dim})")


def train_gan(G: nn.Module, D: nn.Module, images: Tensor, steps: int, batch_size: int = 32, *,
              labels: Tensor | None = None, G_ema: nn.Module | None = None, lr: float = 0.0025,
              betas: tuple[float, float] = (0.0, 0.99), r1_gamma: float = 1.0, r1_interval: int = 16,
              ema_kimg: float = 10.0, ema_rampup: float | None = 0.05, latent: str = "normal",
              prior: str = "normal", prior_params: dict[str, Any] | None = None, accelerator: Any = None,
              device: torch.device | str | None = None, checkpoint_dir: str | Path | None = None,
              checkpoint_every: int = 100, seed: int = 0,
              callback: Callable[[int, dict[str, float]], None] | None = None) -> GANTrainResult:
    """Train (or fine-tune) G against D on `images` in [-1, 1] for `steps` steps of `batch_size` each.

    latent="spherical" draws z from `prior` and centerizes + spherizes it (radius sqrt(z_dim))
    before the generator; "normal" draws z ~ N(0, I). With `checkpoint_dir`, a checkpoint is
    written every `checkpoint_every` steps and at the end (the two newest are kept), and training
    resumes from the latest valid one.
    """
    if latent not in LATENTS:
        raise ValueError(f"latent must be one of {list(LATENTS)}, got {latent!r}")
    for name, value in (("steps", steps), ("batch_size", batch_size), ("r1_interval", r1_interval),
                        ("checkpoint_every", checkpoint_every)):
        least = 0 if name == "steps" else 1
        if not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
    _check_data(images, G, labels)
    accelerator = accelerator if accelerator is not None else gan_accelerator(device)
    device = accelerator.device
    rank = accelerator.process_index

    G = G.to(device).train().requires_grad_(True)
    D = D.to(device).train().requires_grad_(True)
    G_ema = (copy.deepcopy(G) if G_ema is None else G_ema).to(device).eval().requires_grad_(False)
    ratio = r1_interval / (r1_interval + 1)  # lazy regularization: keep the effective step size
    opt_G = torch.optim.Adam(G.parameters(), lr=lr, betas=betas, eps=1e-8)
    opt_D = torch.optim.Adam(D.parameters(), lr=lr * ratio, betas=(betas[0] ** ratio, betas[1] ** ratio), eps=1e-8)
    nets = {"G": G, "D": D, "G_ema": G_ema}

    start = 0
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    latest = checkpoint.latest_checkpoint(folder) if folder is not None else None
    if latest is not None:
        start = load_training_checkpoint(latest, nets, opt_G, opt_D)
    _broadcast_from_main(accelerator, nets.values())

    data = images.to(device=device, dtype=torch.float32)
    data_labels = None if labels is None else as_labels(labels.to(device), G.c_dim, len(labels), device)
    spherical = SphericalLatent(center=True, spherize=True, radius=None)
    prior_params = dict(prior_params or {})

    def draw_z() -> Tensor:
        if latent == "normal":
            return torch.randn([batch_size, G.z_dim], device=device)
        return spherical(sample_prior(prior, (batch_size, G.z_dim), device=device, **prior_params))

    def draw_c() -> Tensor | None:
        if data_labels is None:
            return None
        return data_labels[torch.randint(len(data), (batch_size,), device=device)]

    result = GANTrainResult(G, D, G_ema, resumed_from=start)
    forked = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=forked):
        for step in range(start, steps):
            torch.manual_seed(_step_seed(seed, step, rank))
            index = torch.randint(len(data), (batch_size,), device=device)
            real = data[index]
            real_c = None if data_labels is None else data_labels[index]
            record: dict[str, float] = {"step": float(step + 1)}

            D.requires_grad_(False)
            opt_G.zero_grad(set_to_none=True)
            gen_c = draw_c()
            fake = G(draw_z(), gen_c, noise_mode="random", update_emas=True)
            loss_G = F.softplus(-D(fake, gen_c)).mean()
            loss_G.backward()
            _all_reduce_grads(accelerator, G.parameters())
            opt_G.step()
            D.requires_grad_(True)

            opt_D.zero_grad(set_to_none=True)
            gen_c = draw_c()
            with torch.no_grad():
                fake = G(draw_z(), gen_c, noise_mode="random")
            loss_fake = F.softplus(D(fake, gen_c)).mean()
            loss_real = F.softplus(-D(real, real_c)).mean()
            (loss_fake + loss_real).backward()
            _all_reduce_grads(accelerator, D.parameters())
            opt_D.step()
            record.update(loss_G=loss_G.item(), loss_D_fake=loss_fake.item(), loss_D_real=loss_real.item())

            if r1_gamma > 0 and step % r1_interval == 0:
                opt_D.zero_grad(set_to_none=True)
                r1 = r1_penalty(D, real, real_c)
                (r1.mean() * (r1_gamma / 2) * r1_interval).backward()
                _all_reduce_grads(accelerator, D.parameters())
                opt_D.step()
                record["r1"] = r1.mean().item()

            images_seen = (step + 1) * batch_size * accelerator.num_processes
            update_ema(G_ema, G, ema_beta(batch_size * accelerator.num_processes, images_seen, ema_kimg, ema_rampup))
            result.history.append(record)
            if folder is not None and ((step + 1) % checkpoint_every == 0 or step + 1 == steps):
                accelerator.wait_for_everyone()
                if accelerator.is_main_process:
                    save_training_checkpoint(folder, step + 1, nets, opt_G, opt_D)
            if callback is not None:
                callback(step + 1, record)
    G_ema.eval()
    return result

