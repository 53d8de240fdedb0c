"""Every hook of sphere-plugins, each with its contract. Implement them with `@hookimpl`.

A plugin is any module or object with functions named like these hooks and marked `@hookimpl`.
It arrives through the entry-point group "sphere_plugins" or `sphere_plugins.register(plugin)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT = "sphere_plugins"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec(firstresult=True)
def sphere_adapt_generator(model: Any, options: dict[str, Any]) -> Any:
    """Describe `model` as a generator, or return None when this plugin does not recognize it.

    Called by `wrap_generator(model, ...)`, newest plugin first; the first non-None result wins.
    `options` holds the caller's adapter options (e.g. `z_shape`, or a plugin's own switches).
    Return a `sphere_plugins.GeneratorAdapter`: latent shape, the radius the model expects (None
    means sqrt(d), for a model trained on N(0, I) latents), and `generate(z, **model_kwargs)`
    returning images NCHW in the declared output range.

    One option is shared by every adapter whose model puts z on a sphere itself (StyleGAN2's mapping
    network normalizes z): such an adapter sets `normalizes_z=True` on its GeneratorAdapter and, given
    `options["normalize_z"] = False`, switches that normalization off (or raises ValueError when the
    model cannot). Comparisons "without spherization" rely on it.
    """


@hookspec(firstresult=True)
def sphere_adapt_autoencoder(model: Any, options: dict[str, Any]) -> Any:
    """Describe `model` as an autoencoder, or return None when this plugin does not recognize it.

    Called by `wrap_autoencoder(model, ...)`, newest plugin first; the first non-None result wins.
    Return a `sphere_plugins.AutoencoderAdapter` whose `encode(x)` gives the raw code (the wrapper
    centerizes and spherizes it) and whose `decode(z)` maps a code on the sphere back to images.
    """


@hookspec
def sphere_register_priors(register: Callable[..., None]) -> None:
    """Add latent priors by calling `register(name, sampler, description="", replace=False, **defaults)`.

    `sampler(shape, generator, device, dtype, **params)` returns a tensor of `shape` drawn with
    the torch.Generator `generator` (or the global RNG when None). Called once for every plugin, oldest
    first, when the prior registry is first built, and again after a plugin is registered. A name another
    plugin registered (a built-in included) is refused unless `replace=True`, which replaces it.
    """


@hookspec(firstresult=True)
def sphere_load_model(spec: str, options: dict[str, Any]) -> Any:
    """Build or load the model a spec string names, or return None when the scheme is not yours.

    Specs read "scheme:rest", e.g. "stylegan2:ffhq.pkl", "diffusers:path/to/folder",
    "timm:resnet18", "builtin:tiny-ae", "saved:DIR" (the built-in scheme of save_pretrained folders).
    Called by `load_model(spec, **options)`, newest plugin first; the first non-None result wins.
    Raise a clear error (missing file, bad config) when the scheme is yours but loading fails.
    """


@hookspec(firstresult=True)
def sphere_save_model(model: Any, folder: Any) -> str | None:
    """Write `model` into `folder` (a pathlib.Path, created and empty), or return None when it is not yours.

    Called by `save_model(model, DIR)`, newest plugin first; the first non-None result wins. A wrapper's
    `save_pretrained(DIR)` calls it for itself (the built-in "saved" scheme writes the wrapper's settings) and
    then for what the user wrapped (a module, a pipeline, ...) in DIR/model. Write weights as safetensors (or the
    library's own `save_pretrained`), never a pickle, and return the scheme whose `sphere_load_model`
    rebuilds an equal model from f"{scheme}:{folder}" with no options and no network access.
    """


@hookspec
def sphere_register_saved_modules(register: Callable[[str, type], None]) -> None:
    """Name the classes a saved folder may rebuild as a wrapper's extra submodule: call `register(name, cls)`.

    `cls` is an nn.Module subclass with `get_config()` (a JSON-able dict) and a classmethod
    `from_config(config)` that builds it with the shapes its state needs; the tensors load afterwards.
    `save_pretrained` writes `name` for a submodule of class `cls` into sphere_model.json and refuses a
    submodule of an unregistered class; loading looks the recorded name up here and never imports a path
    named in a file, so only registered classes can be built from a folder. `from_config` must build on
    whatever device is current (the loader first lays the module out on the meta device and compares its
    shapes with the saved tensors) and must validate its config. Called for every plugin, oldest first; a
    name another plugin registered for a different class is an error.
    """


@hookspec
def sphere_model_schemes() -> list[Any]:
    """Return a `sphere_plugins.ModelScheme` for every spec scheme your `sphere_load_model` handles.

    Each names the scheme, the models it gives (generator, autoencoder), its spec forms, an example spec, a
    one-line description, the default options and the `generate()` keywords a command line may set
    (`model_kwargs`: `sphere-plugins sample` and `interpolate` add a flag for each). Error messages,
    `list_schemes()`, `sphere-plugins list` and the benchmarks read them from here, so none of them keeps its
    own list. Its `recognizes(path)`, when set, says whether a plain path (a file or folder) is one this scheme
    loads, so `load_model(path)` can infer the scheme; it must only look at names and small files (no weights
    loaded, nothing imported that is slow).
    """


@hookspec
def sphere_example_models() -> list[str]:
    """Return model specs of small models this plugin can build offline, e.g. ["stylegan2:tiny"].

    The contract tests load every spec all plugins return and check each adapter's promises
    (both steps off = the raw model, codes on the sphere, every prior samples), so a new
    adapter is tested for free. Return an empty list when building one needs files.
    """


@hookspec
def sphere_trainable_generators() -> list[Any]:
    """Return a `sphere_plugins.TrainableGenerator` for each small generator you can train from scratch.

    The benchmarks' sampling table trains one (chosen by name, e.g. "stylegan2") on its data with N(0, I)
    latents and then samples it under every prior; a plugin offering one can be measured there unchanged.
    Return an empty list when you offer none.
    """
