"""Leaving the process group that `accelerate launch` (or torch.distributed.run) made this process join.

A process that exits while the group is still up can abort in the interpreter's teardown (gloo's worker
threads outlive Python: "terminate called without an active exception", SIGABRT, exit status 134), so a
finished run fails at random. Every entry point that may join a group leaves it before it returns.
"""

from __future__ import annotations

import sys


def leave_process_group() -> None:
    """Destroy this process's default torch.distributed group, if there is one; otherwise do nothing (and
    import nothing: a process that never imported torch.distributed has no group)."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
