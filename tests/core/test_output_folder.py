"""Every writer writes only into a folder that is new, empty or its own, and replaces only files it wrote."""

import json
import os

import pytest
import torch

from sphere_plugins import load_model, save_model, wrap_autoencoder
from sphere_plugins.errors import OutputFolderError
from sphere_plugins.nets import ConvAutoencoder
from sphere_plugins.output_folder import MANIFEST, OutputFolder


def _sae(fit=False):
    torch.manual_seed(0)
    sae = wrap_autoencoder(ConvAutoencoder(z_dim=6, width=8))
    if fit:
        sae.fit_prior(torch.randn(32, 6), kind="gmm", components=2)
    return sae


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def _users_folder(folder):
    """A folder of the user's that happens to hold names save_pretrained and finetune write."""
    (folder / "model" / "thesis").mkdir(parents=True)
    (folder / "model" / "thesis" / "ch1.tex").write_text("\\chapter{One}")
    (folder / "notes.txt").write_text("notes")
    (folder / "wrapper_state.safetensors").write_text("mine")
    (folder / "log.jsonl").write_text("my log\n")
    return folder


def test_save_pretrained_into_a_folder_of_the_users_files_changes_nothing(tmp_path):
    folder = _users_folder(tmp_path / "u")
    before = _snapshot(folder)
    with pytest.raises(OutputFolderError, match=f"refusing to write into '{folder}': it holds files sphere-plugins "
                                                "did not write .* choose a new or empty folder"):
        _sae(fit=True).save_pretrained(folder)
    assert _snapshot(folder) == before


def test_a_new_or_empty_folder_gets_a_manifest_of_every_file_written(tmp_path):
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "new" / "deeper", tmp_path / "empty"):
        _sae(fit=True).save_pretrained(folder)
        listed = json.loads((folder / MANIFEST).read_text())["files"]
        on_disk = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        assert sorted(listed + [MANIFEST]) == on_disk
        assert {"sphere_model.json", "wrapper_state.safetensors", "model/model.safetensors"} <= set(listed)


def test_saving_again_replaces_our_files_and_leaves_the_users_alone(tmp_path):
    from safetensors.torch import load_file

    folder = tmp_path / "out"
    _sae(fit=True).save_pretrained(folder)
    (folder / "notes.txt").write_text("added by the user")
    (folder / "model" / "stale.bin").write_bytes(b"ours")  # as if an earlier save of another plugin wrote it
    _edit_manifest(folder, lambda files: files + ["model/stale.bin"])
    _sae(fit=False).save_pretrained(folder)
    assert load_file(str(folder / "wrapper_state.safetensors")) == {}  # the fitted prior's tensors are gone
    assert not (folder / "model" / "stale.bin").exists()
    assert (folder / "notes.txt").read_text() == "added by the user"
    assert "model/stale.bin" not in json.loads((folder / MANIFEST).read_text())["files"]
    assert load_model(folder).fitted_prior is None


def _edit_manifest(folder, edit):
    record = json.loads((folder / MANIFEST).read_text())
    record["files"] = edit(record["files"])
    (folder / MANIFEST).write_text(json.dumps(record))


def test_a_users_file_inside_a_folder_we_replace_stops_the_save(tmp_path):
    folder = tmp_path / "out"
    _sae().save_pretrained(folder)
    (folder / "model" / "ch1.tex").write_text("mine")
    before = _snapshot(folder)
    with pytest.raises(OutputFolderError, match="model/ch1.tex' is not a file sphere-plugins wrote"):
        _sae(fit=True).save_pretrained(folder)
    assert _snapshot(folder) == before


def test_save_model_does_not_replace_a_users_config(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "config.json").write_text('{"mine": true}')
    with pytest.raises(OutputFolderError, match="it holds files sphere-plugins did not write \\('config.json'\\)"):
        save_model(load_model("stylegan2:tiny", seed=0), folder)
    assert (folder / "config.json").read_text() == '{"mine": true}'


def test_a_home_like_folder_with_a_model_folder_is_refused_whole(tmp_path):
    home = tmp_path / "home"
    (home / "model").mkdir(parents=True)
    (home / "model" / "weights.bin").write_bytes(b"\x00" * 8)
    (home / ".bashrc").write_text("export X=1")
    with pytest.raises(OutputFolderError, match=f"'{home}'"):
        _sae().save_pretrained(home)
    assert (home / "model" / "weights.bin").read_bytes() == b"\x00" * 8


def test_a_forged_manifest_or_a_link_is_not_a_way_in(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / MANIFEST).write_text('{"files": ["notes.txt"]}')
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(OutputFolderError, match="is not a manifest sphere-plugins wrote"):
        OutputFolder(folder)
    outside = tmp_path / "outside"
    outside.mkdir()
    linked = tmp_path / "linked"
    _sae().save_pretrained(linked)
    os.rename(linked / "model", outside / "model")
    (linked / "model").symlink_to(outside / "model")
    with pytest.raises(OutputFolderError, match="is a link"):
        _sae().save_pretrained(linked)
    assert sorted(p.name for p in (outside / "model").iterdir()) == ["config.json", "model.safetensors"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_written_files_honour_the_umask(tmp_path, umask, mode):
    from sphere_plugins.generation import save_png

    old = os.umask(umask)
    try:
        _sae(fit=True).save_pretrained(tmp_path / "saved")
        save_png(torch.zeros(1, 4, 4), tmp_path / "image.png")
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "saved").rglob("*") if p.is_file()] + [tmp_path / "image.png"]
    assert {p.relative_to(tmp_path).as_posix(): oct(p.stat().st_mode & 0o777) for p in files} == \
        {p.relative_to(tmp_path).as_posix(): oct(mode) for p in files}
