"""Every README's code runs as written: a newcomer copying it gets working code.

Python blocks of the root README and of every adapter README are executed in a scratch folder holding the
files they name (small random models saved where the examples expect them); the root README's command-line
block runs each `sphere-plugins` line through `python -m sphere_plugins`.
"""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
READMES = [ROOT / "README.md", *sorted(ROOT.glob("adapters/*/README.md"))]


def _blocks(language):
    return [(path, index, source) for path in READMES
            for index, source in enumerate(re.findall(rf"```{language}\n(.*?)```", path.read_text(), flags=re.S))]


PYTHON = _blocks("python")


def _label(case):
    path, index, _ = case
    return f"{path.relative_to(ROOT).parent.as_posix() or 'root'}-{index}"


def test_the_readmes_have_python_examples():
    assert len([case for case in PYTHON if case[0] == ROOT / "README.md"]) >= 3
    assert {case[0].parent.name for case in PYTHON} >= {"stylegan2", "diffusers", "timm"}


def _files_for(folder: Path, source: str) -> None:
    """The files a README example names, as small random models."""
    from sphere_plugins import load_model

    if '"stylegan2:ffhq.pkl"' in source or '"snapshot.pkl"' in source:
        from sphere_stylegan2.configs import tiny_discriminator
        from sphere_stylegan2.loader import save_nvlabs_pickle

        G = load_model("stylegan2:tiny", seed=0)
        for name in ("ffhq.pkl", "snapshot.pkl"):
            save_nvlabs_pickle(folder / name, G=G, D=tiny_discriminator(seed=0), G_ema=G)
    if "diffusers:path/to/vae" in source:
        load_model("diffusers:tiny-vae", seed=0, resolution=32).save_pretrained(folder / "path/to/vae")
        load_model("diffusers:tiny-ddpm", seed=0, scheduler="ddim", num_train_timesteps=1000).save_pretrained(
            folder / "path/to/ddim")
    if "convnext_nano.safetensors" in source:
        import timm
        from safetensors.torch import save_file

        save_file(timm.create_model("convnext_nano").state_dict(), str(folder / "convnext_nano.safetensors"))


@pytest.mark.parametrize("case", PYTHON, ids=_label)
def test_readme_example_runs(case, tmp_path, monkeypatch):
    path, index, source = case
    monkeypatch.chdir(tmp_path)
    _files_for(tmp_path, source)
    namespace = {}
    if "MyGenerator" in source:  # the adapter example names the user's own model class
        class MyGenerator(torch.nn.Module):
            latent_size = 6

            def render(self, z):
                return z.view(-1, 1, 2, 3)

        namespace["MyGenerator"] = MyGenerator
    exec(compile(source, f"{path.relative_to(ROOT)} block {index}", "exec"), namespace)
    if "MyAdapter" in namespace:
        import sphere_plugins

        wrapped = sphere_plugins.wrap_generator(MyGenerator())
        try:
            assert wrapped.sample(2).shape == (2, 1, 2, 3)
        finally:
            for name, plugin in sphere_plugins.get_plugin_manager().list_name_plugin():
                if isinstance(plugin, namespace["MyAdapter"]):
                    sphere_plugins.unregister(plugin)
    elif "images" in namespace:
        assert torch.isfinite(namespace["images"]).all()


def _command_lines():
    root = (ROOT / "README.md").read_text()
    section = root[root.index("### Command line"):root.index("## Priors")]
    (block,) = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.startswith("sphere-plugins")]


def test_the_command_line_section_runs_in_order(tmp_path):
    from sphere_plugins import load_model
    from sphere_stylegan2.loader import save_nvlabs_pickle

    save_nvlabs_pickle(tmp_path / "network.pkl", G_ema=load_model("stylegan2:tiny", seed=0))
    lines = _command_lines()
    assert len(lines) >= 6
    for line in lines:
        argv = shlex.split(line)[1:]
        result = subprocess.run([sys.executable, "-m", "sphere_plugins", *argv], cwd=tmp_path, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, f"{line}: {result.stderr}"
    assert (tmp_path / "samples" / "seed0007.png").is_file() and (tmp_path / "sae" / "sphere_model.json").is_file()
