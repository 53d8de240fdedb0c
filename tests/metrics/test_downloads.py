"""The download opt-in reaches the libraries' own loaders, and a corrupt weight file gets one clear line."""

from __future__ import annotations

import pytest
import torch

from sphere_plugins.downloads import ALLOW_DOWNLOAD_ENV
from sphere_plugins.errors import CorruptWeightsError, MissingWeightsError
from sphere_plugins.metrics import INCEPTION_FILE, InceptionFeatures


class _Stop(RuntimeError):
    pass


@pytest.fixture
def recorded_inception(monkeypatch):
    """clean-fid's InceptionV3W replaced by a recorder that stops before any network access."""
    import cleanfid.inception_torchscript as torchscript

    calls = []

    def fake(path, download, resize_inside):
        calls.append({"path": path, "download": download})
        raise _Stop("stopped before downloading")

    monkeypatch.setattr(torchscript, "InceptionV3W", fake)
    return calls


def test_without_the_opt_in_a_missing_inception_file_is_never_downloaded(tmp_path, monkeypatch, recorded_inception):
    monkeypatch.delenv(ALLOW_DOWNLOAD_ENV, raising=False)
    with pytest.raises(MissingWeightsError):
        InceptionFeatures(tmp_path)
    assert recorded_inception == []


def test_the_opt_in_lets_clean_fid_download_the_missing_file(tmp_path, monkeypatch, recorded_inception):
    monkeypatch.setenv(ALLOW_DOWNLOAD_ENV, "1")
    with pytest.raises(_Stop):
        InceptionFeatures(tmp_path)
    assert recorded_inception == [{"path": str(tmp_path), "download": True}]


def test_the_command_line_flag_reaches_the_inception_loader(tmp_path, monkeypatch, recorded_inception, capsys):
    from sphere_plugins.cli import main

    monkeypatch.setenv(ALLOW_DOWNLOAD_ENV, "0")
    status = main(["evaluate", "digits", "digits", "--allow-download", "--inception-dir", str(tmp_path)])
    assert status == 1 and "stopped before downloading" in capsys.readouterr().err
    assert recorded_inception == [{"path": str(tmp_path), "download": True}]


def test_a_corrupt_inception_file_gets_one_line_naming_it_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv(ALLOW_DOWNLOAD_ENV, raising=False)
    (tmp_path / INCEPTION_FILE).write_bytes(b"PK\x03\x04 truncated download")
    with pytest.raises(CorruptWeightsError) as caught:
        InceptionFeatures(tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(tmp_path / INCEPTION_FILE) in message and "delete it" in message and "--allow-download" in message


def test_a_corrupt_lpips_backbone_gets_one_line(tmp_path, monkeypatch):
    from sphere_plugins.metrics import LPIPS, lpips_backbone_path

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    path = lpips_backbone_path("alex")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a state dict")
    with pytest.raises(CorruptWeightsError, match="LPIPS-alex .* is present but unreadable"):
        LPIPS("alex")
