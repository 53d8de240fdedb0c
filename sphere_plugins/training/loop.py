"""One training loop on accelerate for every autoencoder objective: CPU, one GPU, or several processes
under `accelerate launch`, with gradient accumulation, mixed precision on GPU, JSON-lines logs,
atomic periodic checkpoints and exact resume.

`batch_size` is per process and per micro-batch: an optimizer step sees
batch_size * grad_accum * num_processes images. A resumed run continues the weights, the optimizer,
every process's torch RNG and the data order, so on the CPU it reproduces an uninterrupted run bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from sphere_plugins import jsontext
from sphere_plugins.checkpoint import (
    Checkpoint,
    CheckpointError,
    checkpoint_lock,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from sphere_plugins.data import ImageSet, check_image_tensor, load_images
from sphere_plugins.errors import TrainingDivergedError
from sphere_plugins.generation import MAX_SEED
from sphere_plugins.training.batches import ShardedBatches

Callback = Callable[[int, dict[str, float]], None]
_PRECISIONS = ("no", "fp16", "bf16")
# Config fields whose change makes a resumed run differ from the run it continues (a warning names them).
_TRAJECTORY_FIELDS = ("batch_size", "lr", "seed", "grad_accum", "mixed_precision", "max_grad_norm", "weight_decay")
# Of those, the ones the optimizer holds: a resumed run sets them in its param groups.
_OPTIMIZER_FIELDS = ("lr", "weight_decay")


@dataclass
class TrainConfig:
    """Everything that shapes a training run (saved in every checkpoint)."""

    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    grad_accum: int = 1
    mixed_precision: str = "no"
    max_grad_norm: float | None = None
    weight_decay: float = 0.0
    checkpoint_every: int = 0
    checkpoint_dir: str | None = None
    keep_checkpoints: int | None = 3
    resume: bool | str = False
    log_path: str | None = None
    log_every: int = 10
    progress: bool = True
    cpu: bool = False
    find_unused_parameters: bool = False
    compile: bool = False  # run forward and backward through torch.compile (first step compiles, for seconds)
    # What the objective was built from (the command line records its SPEC and options): a checkpoint of another
    # model is refused on resume, as one of other data or of another architecture is.
    model_spec: str | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accum", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(self.checkpoint_every, int) or self.checkpoint_every < 0:
            raise ValueError(
                f"checkpoint_every must be an int >= 0 (0: only at the end), got {self.checkpoint_every!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}")
        if type(self.seed) is not int or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be an int in 0..{MAX_SEED}, got {self.seed!r}")
        if self.model_spec is not None and not isinstance(self.model_spec, str):
            raise ValueError(f"model_spec must be a str or None, got {type(self.model_spec).__name__}")
        if not isinstance(self.compile, bool):
            raise ValueError(f"compile must be True or False, got {self.compile!r}")
        if self.mixed_precision not in _PRECISIONS:
            raise ValueError(f"mixed_precision must be one of {_PRECISIONS}, got {self.mixed_precision!r}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be positive or None, got {self.max_grad_norm!r}")
        if self.resume and self.checkpoint_dir is None and not isinstance(self.resume, str):
            raise ValueError("resume=True needs checkpoint_dir (where to look for checkpoints)")
        if self.checkpoint_dir is not None:
            self.checkpoint_dir = os.fspath(self.checkpoint_dir)
        if self.log_path is not None:
            self.log_path = os.fspath(self.log_path)
        if isinstance(self.resume, os.PathLike):
            self.resume = os.fspath(self.resume)


@dataclass
class TrainResult:
    """What a run returns: the trained objective (unwrapped), where it stopped, and its log records."""

    objective: nn.Module
    step: int
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None
    resumed_from: Path | None = None
    seconds: float = 0.0


def as_images(data: Any) -> Tensor:
    """Images [N, C, H, W] in [-1, 1] from a tensor, an ImageSet-like object (.images) or a data spec string."""
    if isinstance(data, (str, os.PathLike)):
        data = load_images(os.fspath(data))
    if isinstance(data, ImageSet) or isinstance(getattr(data, "images", None), Tensor):
        data = data.images
    return check_image_tensor(data, "data")


def _single_process() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) == 1 and not (
        torch.distributed.is_available() and torch.distributed.is_initialized())


def _forget_other_accelerate_settings(cpu: bool, mixed_precision: str) -> None:
    """Start accelerate's process-wide state afresh when it holds another device or precision.

    accelerate keeps one state per process (device in PartialState, precision in AcceleratorState) and refuses
    or ignores different settings later, while one process may train several runs with different settings.
    accelerate offers no public reset, so this is the only place that touches its private `_shared_state` and
    `_reset_state`; tests/core/test_train.py checks that they still exist and still do this.
    """
    from accelerate.state import AcceleratorState, PartialState

    if not PartialState._shared_state:
        return
    wanted = "cpu" if cpu or not torch.cuda.is_available() else "cuda"
    device_differs = PartialState().device.type != wanted
    precision_differs = bool(AcceleratorState._shared_state) and (
        AcceleratorState().mixed_precision != mixed_precision)
    if device_differs or precision_differs:
        AcceleratorState._reset_state(reset_partial_state=True)


def make_accelerator(cpu: bool = False, mixed_precision: str = "no", gradient_accumulation_steps: int = 1,
                     find_unused_parameters: bool = False) -> Any:
    """An accelerate.Accelerator for these settings, even when an earlier run in this process used others."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    if mixed_precision != "no" and (cpu or not torch.cuda.is_available()):
        raise ValueError(f"mixed_precision={mixed_precision!r} needs a GPU; use 'no' on the CPU")
    if _single_process():
        _forget_other_accelerate_settings(cpu, mixed_precision)
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)]
    return Accelerator(cpu=cpu, mixed_precision=mixed_precision,
                       gradient_accumulation_steps=gradient_accumulation_steps, kwargs_handlers=handlers)


def _make_accelerator(config: TrainConfig):
    return make_accelerator(config.cpu, config.mixed_precision, config.grad_accum, config.find_unused_parameters)


class _JsonLines:
    """Append-only JSON-lines log on the main process; on resume, drops records past the resumed step."""

    def __init__(self, path: str | None, active: bool, resumed_step: int):
        self.path = Path(path) if path and active else None
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if resumed_step and self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line cut short when the run was killed
                    continue
                if isinstance(record, dict) and record.get("step", 0) <= resumed_step:
                    kept.append(line)
        self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        if self.path is not None:
            with open(self.path, "a") as handle:
                handle.write(jsontext.dumps(record) + "\n")


def _rng_tensors(accelerator) -> dict[str, Tensor]:
    from accelerate.utils import gather_object

    mine = {"cpu": torch.get_rng_state()}
    if accelerator.device.type == "cuda":
        mine["cuda"] = torch.cuda.get_rng_state(accelerator.device)
    states = gather_object([mine]) if accelerator.num_processes > 1 else [mine]
    return {f"rng/{kind}/{rank}": t for rank, state in enumerate(states) for kind, t in state.items()}


_DATA_ORDER_FIELDS = ("epoch", "offset", "seed", "n", "batch_size", "world_size")


def check_resume_state(state: dict[str, Any]) -> None:
    """CheckpointError unless a checkpoint's state has what resuming reads: a data order of ints, a config dict
    and the fingerprint of the data it was trained on."""
    order = state.get("data_order")
    if not isinstance(order, dict) or not all(type(order.get(k)) is int and order[k] >= 0
                                              for k in _DATA_ORDER_FIELDS):
        raise CheckpointError(f"its state has no valid 'data_order' (non-negative ints {list(_DATA_ORDER_FIELDS)})")
    if not isinstance(state.get("config", {}), dict):
        raise CheckpointError("its state's 'config' is not a dict")
    data = state.get("data")
    if not (isinstance(data, dict) and type(data.get("images")) is int and isinstance(data.get("shape"), list)
            and isinstance(data.get("sha256"), str)):
        raise CheckpointError("its state has no valid 'data' fingerprint (images, shape, sha256)")


def data_fingerprint(images: Tensor) -> dict[str, Any]:
    """What identifies a training set in a checkpoint: its size, image shape and the SHA-256 of its values."""
    values = images.detach().contiguous().cpu()
    digest = hashlib.sha256(memoryview(values.view(torch.uint8).numpy())).hexdigest()
    return {"images": values.shape[0], "shape": list(values.shape[1:]), "dtype": str(values.dtype)[6:],
            "sha256": digest}


def _describe_data(record: dict[str, Any]) -> str:
    shape = "x".join(map(str, record.get("shape", [])))
    return f"{record.get('images')} images of {shape}, SHA-256 {str(record.get('sha256'))[:12]}..."


def _fresh_start(config: TrainConfig) -> str:
    if isinstance(config.resume, str):
        return "resume from a checkpoint of this run, or start afresh without resume"
    return f"to start afresh, train into another checkpoint folder or remove {config.checkpoint_dir}"


def _check_same_run(checkpoint: Checkpoint, config: TrainConfig, data: dict[str, Any]) -> None:
    """CheckpointError unless `checkpoint` continues this run: the same model spec and the same data."""
    saved_spec = checkpoint.state.get("config", {}).get("model_spec")
    if saved_spec != config.model_spec:
        raise CheckpointError(f"{checkpoint.path} continues a run of the model {saved_spec!r}, but this run trains "
                              f"{config.model_spec!r}; {_fresh_start(config)}")
    if checkpoint.state["data"] != data:
        raise CheckpointError(f"{checkpoint.path} was trained on other data ({_describe_data(checkpoint.state['data'])})"
                              f" than this run's ({_describe_data(data)}); resume with the same data and "
                              f"resolution, or {_fresh_start(config)}")


def _choose_checkpoint(config: TrainConfig, accelerator) -> Path | None:
    from accelerate.utils import broadcast_object_list

    chosen: list[Any] = [None]
    if accelerator.is_main_process:
        if isinstance(config.resume, str):
            chosen[0] = config.resume
        else:
            found = latest_checkpoint(config.checkpoint_dir, check=check_resume_state)
            chosen[0] = None if found is None else str(found)
    if accelerator.num_processes > 1:
        broadcast_object_list(chosen)
    return None if chosen[0] is None else Path(chosen[0])


def _restore(checkpoint: Checkpoint, model, optimizer, batches: ShardedBatches, accelerator,
             config: TrainConfig, data: dict[str, Any]) -> None:
    _check_same_run(checkpoint, config, data)
    saved = checkpoint.state.get("config", {})
    changed = [f"{k}: {saved.get(k)!r} -> {getattr(config, k)!r}" for k in _TRAJECTORY_FIELDS
               if k in saved and saved[k] != getattr(config, k)]
    applied = [k for k in _OPTIMIZER_FIELDS if k in saved and saved[k] != getattr(config, k)]
    if changed:
        now = f"; the optimizer now uses the new {' and '.join(applied)}" if applied else ""
        warnings.warn(f"resuming {checkpoint.path} with a changed config ({'; '.join(changed)}){now}; "
                      "the run will not match an uninterrupted one", stacklevel=3)
    order = checkpoint.state["data_order"]
    try:
        if order["world_size"] != batches.world_size:
            batches.epoch = batches.checked_epoch(order["epoch"])
            warnings.warn(f"the saved data order is for {order['world_size']} processes, this run has "
                          f"{batches.world_size}; the data order restarts from epoch {batches.epoch}", stacklevel=3)
        else:
            batches.load_state(order)
    except ValueError as error:
        raise CheckpointError(f"{checkpoint.path / 'state.json'}: {error}") from None
    try:
        checkpoint.load_model(accelerator.unwrap_model(model))
    except CheckpointError as error:
        raise CheckpointError(f"{error}; {_fresh_start(config)}") from None
    try:
        optimizer.load_state_dict(checkpoint.optimizer_state)
    except (ValueError, KeyError, RuntimeError) as error:
        raise CheckpointError(f"{checkpoint.path / 'optimizer.json'} does not fit this run's optimizer ({error}); "
                              f"{_fresh_start(config)}") from None
    for group in optimizer.param_groups:
        group.update({name: getattr(config, name) for name in _OPTIMIZER_FIELDS})
    rank = accelerator.process_index
    cpu_state = checkpoint.tensors.get(f"rng/cpu/{rank}")
    if cpu_state is None:
        warnings.warn(f"{checkpoint.path} has no RNG state for process {rank}; reseeding", stacklevel=3)
    else:
        torch.set_rng_state(cpu_state)
    cuda_state = checkpoint.tensors.get(f"rng/cuda/{rank}")
    if cuda_state is not None and accelerator.device.type == "cuda":
        torch.cuda.set_rng_state(cuda_state, accelerator.device)
    scaler = getattr(accelerator, "scaler", None)
    if scaler is not None and checkpoint.state.get("scaler"):
        scaler.load_state_dict(checkpoint.state["scaler"])


def _save(config: TrainConfig, step: int, model, optimizer, batches: ShardedBatches, accelerator,
          data: dict[str, Any]) -> Path | None:
    rng = _rng_tensors(accelerator)
    path = None
    if accelerator.is_main_process:
        scaler = getattr(accelerator, "scaler", None)
        state = {"config": asdict(config), "data": data, "data_order": batches.state(),
                 "world_size": accelerator.num_processes, "scaler": scaler.state_dict() if scaler is not None else None}
        path = save_checkpoint(config.checkpoint_dir, step, accelerator.unwrap_model(model), optimizer, state, rng,
                               keep=config.keep_checkpoints)
    accelerator.wait_for_everyone()
    return path


def _reduced_logs(sums: dict[str, Tensor], count: int, accelerator) -> dict[str, float]:
    names = sorted(sums)
    stacked = torch.stack([sums[n].float() for n in names]) / count
    if accelerator.num_processes > 1:
        stacked = accelerator.reduce(stacked, reduction="mean")
    return dict(zip(names, stacked.tolist()))


def train(objective: nn.Module, data: Any, config: TrainConfig, accelerator: Any = None,
          callbacks: Sequence[Callback] = ()) -> TrainResult:
    """Train `objective` (forward(batch) -> (loss, logs)) on images in [-1, 1] with Adam.

    Seeds torch's global RNG with config.seed + process index (the objectives draw their noise from it)
    unless a checkpoint is resumed, which restores it. `callbacks` run on every process after each
    optimizer step as callback(step, latest log record). The checkpoint folder is locked for the run; a
    checkpoint of another model, architecture or data set is refused, and a run whose loss or weights stop
    being finite raises TrainingDivergedError, writing nothing after its last good checkpoint.
    """
    if not isinstance(objective, nn.Module):
        raise ValueError(
            f"objective must be an nn.Module whose forward returns (loss, logs), got {type(objective).__name__}")
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    images = as_images(data)
    accelerator = _make_accelerator(config) if accelerator is None else accelerator
    if accelerator.gradient_accumulation_steps != config.grad_accum:
        raise ValueError(f"the accelerator accumulates {accelerator.gradient_accumulation_steps} micro-batches but "
                         f"config.grad_accum is {config.grad_accum}; make them equal")
    if config.checkpoint_every and config.checkpoint_dir is None:
        raise ValueError("checkpoint_every needs checkpoint_dir (where to write checkpoints)")
    start_time = time.perf_counter()
    torch.manual_seed(config.seed + accelerator.process_index)
    params = [p for p in objective.parameters() if p.requires_grad]
    if not params:
        raise ValueError("objective has no trainable parameters (all have requires_grad=False)")
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    model, optimizer = accelerator.prepare(objective, optimizer)
    batches = ShardedBatches(images.shape[0], config.batch_size, config.seed, accelerator.process_index,
                             accelerator.num_processes)
    fingerprint = data_fingerprint(images) if config.checkpoint_dir or config.resume else {}
    with _checkpoint_folder_held(config, accelerator):
        start, resumed_from = 0, None
        if config.resume:
            resumed_from = _choose_checkpoint(config, accelerator)
            if resumed_from is not None:
                checkpoint = load_checkpoint(resumed_from, check=check_resume_state)
                _restore(checkpoint, model, optimizer, batches, accelerator, config, fingerprint)
                start = checkpoint.step
        result = TrainResult(accelerator.unwrap_model(model), start, resumed_from=resumed_from)
        _run(model, optimizer, images, batches, accelerator, config, start, callbacks, result, fingerprint)
    result.seconds = time.perf_counter() - start_time
    return result


@contextmanager
def _checkpoint_folder_held(config: TrainConfig, accelerator) -> Iterator[None]:
    """The main process locks the checkpoint folder for the run; every process raises if another run holds it."""
    from accelerate.utils import broadcast_object_list

    with ExitStack() as stack:
        problem: list[str | None] = [None]
        if config.checkpoint_dir is not None and accelerator.is_main_process:
            try:
                stack.enter_context(checkpoint_lock(config.checkpoint_dir))
            except CheckpointError as error:
                problem[0] = str(error)
        if accelerator.num_processes > 1:
            broadcast_object_list(problem)
        if problem[0] is not None:
            raise CheckpointError(problem[0])
        yield


def _first_nonfinite(first: Tensor, loss: Tensor, step: int) -> Tensor:
    """`first` (0: none yet), or `step` if this is the first non-finite loss; stays on the device (no sync)."""
    return torch.where((first == 0) & ~torch.isfinite(loss.detach()), step, first)


def _check_finite(first: Tensor, model, accelerator, step: int, weights: bool, result: TrainResult,
                  config: TrainConfig) -> None:
    """TrainingDivergedError if a loss so far (any process) or, when `weights`, a weight is not finite."""
    seen = accelerator.gather(first.view(1)) if accelerator.num_processes > 1 else first.view(1)
    bad = seen[seen > 0]
    where = None
    if bad.numel():
        where = f"the loss was not finite at step {int(bad.min())}"
    elif weights and not torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all():
        where = f"the weights were not finite after step {step}"
    if where is not None:
        kept = result.checkpoint or result.resumed_from
        last = (f"the last good checkpoint, {kept}, is kept: resume from it with a smaller lr" if kept else
                "no checkpoint was written (checkpoint_every saves some on the way)")
        raise TrainingDivergedError(f"training diverged: {where} (lr {config.lr:g}); {last}")


def _run(model, optimizer, images: Tensor, batches: ShardedBatches, accelerator, config: TrainConfig, start: int,
         callbacks: Sequence[Callback], result: TrainResult, fingerprint: dict[str, Any]) -> None:
    from tqdm.auto import tqdm

    log = _JsonLines(config.log_path, accelerator.is_main_process, start)
    bar = tqdm(total=config.steps, initial=start, disable=not (config.progress and accelerator.is_local_main_process),
               desc="train", dynamic_ncols=True, mininterval=2.0)  # fewer redraws in CI logs
    latest: dict[str, float] = {}
    first_nonfinite = torch.zeros((), dtype=torch.int64, device=accelerator.device)
    model.train()
    # The compiled wrapper shares the module's parameters; `model` itself stays what accelerate prepared, so
    # gradient sync, checkpoints and unwrap_model see no difference.
    forward = torch.compile(model) if config.compile else model
    with bar:
        for step in range(start + 1, config.steps + 1):
            sums: dict[str, Tensor] = {}
            for _ in range(config.grad_accum):
                x = images[batches.next_indices().to(images.device)].to(accelerator.device, non_blocking=True)
                with accelerator.accumulate(model):
                    loss, logs = forward(x)
                    first_nonfinite = _first_nonfinite(first_nonfinite, loss, step)
                    accelerator.backward(loss)
                    if config.max_grad_norm is not None and accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                for name, value in logs.items():
                    sums[name] = sums[name] + value.detach() if name in sums else value.detach()
            logging = step % config.log_every == 0 or step == config.steps
            saving = bool(config.checkpoint_dir) and (
                (config.checkpoint_every and step % config.checkpoint_every == 0) or step == config.steps)
            if logging or saving:
                _check_finite(first_nonfinite, model, accelerator, step, saving or step == config.steps, result,
                              config)
            if logging:
                latest = {"step": step, **_reduced_logs(sums, config.grad_accum, accelerator)}
                result.history.append(latest)
                log.write(latest)
                bar.set_postfix({k: f"{v:.4g}" for k, v in latest.items() if k != "step"}, refresh=False)
            result.step = step
            if saving:
                result.checkpoint = _save(config, step, model, optimizer, batches, accelerator, fingerprint)
            bar.update(1)
            for callback in callbacks:
                callback(step, latest)
