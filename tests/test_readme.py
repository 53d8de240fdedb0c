"""The README's Python examples run as written: a newcomer copying them gets working code."""

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index):
    source = BLOCKS[index]
    namespace = {}
    if "MyGenerator" in source:  # the adapter example names the user's own model class
        class MyGenerator(torch.nn.Module):
            latent_size = 6

            def render(self, z):
                return z.view(-1, 1, 2, 3)

        namespace["MyGenerator"] = MyGenerator
    exec(compile(source, f"README.md block {index}", "exec"), namespace)
    if "MyAdapter" in namespace:
        import sphere_plugins

        wrapped = sphere_plugins.wrap_generator(MyGenerator())
        try:
            assert wrapped.sample(2).shape == (2, 1, 2, 3)
        finally:
            for name, plugin in sphere_plugins.get_plugin_manager().list_name_plugin():
                if isinstance(plugin, namespace["MyAdapter"]):
                    sphere_plugins.unregister(plugin)
    else:
        assert "images" in namespace and torch.isfinite(namespace["images"]).all()
