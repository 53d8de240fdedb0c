"""Entry points leave the process group they ran in: exiting inside a gloo group can abort the process."""

import torch.distributed as dist

from sphere_plugins.cli import main as cli_main
from sphere_plugins.process_group import leave_process_group


def _join_group_of_one(tmp_path) -> None:
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    assert dist.is_initialized()


def test_leave_process_group_destroys_the_group_and_is_a_no_op_without_one(tmp_path):
    _join_group_of_one(tmp_path)
    leave_process_group()
    assert not dist.is_initialized()
    leave_process_group()  # nothing to leave: no error
    assert not dist.is_initialized()


def test_the_command_line_leaves_the_group_it_ran_in(tmp_path, capsys):
    _join_group_of_one(tmp_path)
    try:
        assert cli_main(["list"]) == 0
        assert not dist.is_initialized()
    finally:
        leave_process_group()
    assert "stylegan2" in capsys.readouterr().out
