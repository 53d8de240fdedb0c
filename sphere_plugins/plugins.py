"""The one PluginManager: built-in plugins, entry-point discovery, register(), typed hook calls."""

from __future__ import annotations

import os
import sys
import warnings
from importlib import import_module
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import pluggy

from sphere_plugins import hookspecs
from sphere_plugins.errors import UnknownModelError
from sphere_plugins.hookspecs import PROJECT, hookimpl
from sphere_plugins.offers import ModelScheme, TrainableGenerator

ENTRY_POINT_GROUP = "sphere_plugins"
BUILTIN_PLUGINS = ("sphere_plugins.priors", "sphere_plugins.module_adapters")
# Comma-separated entry-point names to load; unset loads all, an empty value loads none.
LOAD_ENV = "SPHERE_PLUGINS_LOAD"
# Any non-empty value prints every hook call to stderr.
TRACE_ENV = "SPHERE_PLUGINS_TRACE"

__all__ = ["hookimpl", "get_plugin_manager", "register", "unregister", "plugin_names", "load_model", "model_schemes",
           "trainable_generators"]

_manager: pluggy.PluginManager | None = None
_listeners: list = []


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager, built on first use: built-ins, then installed entry points."""
    global _manager
    if _manager is None:
        manager = pluggy.PluginManager(PROJECT)
        manager.add_hookspecs(hookspecs)
        for module_name in BUILTIN_PLUGINS:
            manager.register(import_module(module_name), name=module_name)
        _load_entry_points(manager)
        manager.check_pending()
        if os.environ.get(TRACE_ENV):
            manager.trace.root.setwriter(lambda text: sys.stderr.write(text))
            manager.enable_tracing()
        _manager = manager
    return _manager


def _load_entry_points(manager: pluggy.PluginManager) -> None:
    wanted = os.environ.get(LOAD_ENV)
    allowed = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        if allowed is not None and entry_point.name not in allowed:
            continue
        if manager.get_plugin(entry_point.name) is not None:
            continue
        try:
            plugin = entry_point.load()
        except Exception as error:  # a broken third-party plugin must not break the rest
            warnings.warn(
                f"sphere_plugins: plugin {entry_point.name!r} ({entry_point.value}) failed to load: {error!r}. "
                f"Set {LOAD_ENV} to a comma-separated list of the plugins to load to bypass it.",
                stacklevel=3,
            )
            continue
        manager.register(plugin, name=entry_point.name)


def register(plugin: object, name: str | None = None) -> None:
    """Register a plugin (a module or object with @hookimpl functions) for this process.

    Its name is `name`, else the module's name or the object's class path; the same plugin twice, or a
    second plugin under a taken name, is refused with the name it already has.
    """
    manager = get_plugin_manager()
    for existing_name, existing in manager.list_name_plugin():
        if existing is plugin:
            raise ValueError(f"plugin {readable_name(plugin)} is already registered as {existing_name!r}; "
                             "unregister it first to register it again")
    name = readable_name(plugin) if name is None else name
    if manager.get_plugin(name) is not None or manager.is_blocked(name):
        raise ValueError(f"a plugin named {name!r} is already registered; pass register(plugin, name=...) "
                         f"with another name. Registered: {', '.join(plugin_names())}")
    manager.register(plugin, name=name)
    try:
        manager.check_pending()
    except pluggy.PluginValidationError:
        manager.unregister(plugin)
        raise
    _changed()


def readable_name(plugin: object) -> str:
    """A module's dotted name, a class's path, or an instance's class path."""
    if isinstance(plugin, ModuleType):
        return plugin.__name__
    cls = plugin if isinstance(plugin, type) else type(plugin)
    return f"{cls.__module__}.{cls.__qualname__}"


def unregister(plugin: object | None = None, name: str | None = None) -> None:
    """Remove a plugin registered earlier (by object or by name)."""
    get_plugin_manager().unregister(plugin=plugin, name=name)
    _changed()


def plugin_names() -> list[str]:
    """Names of the loaded plugins, built-ins included."""
    return sorted(name for name, _ in get_plugin_manager().list_name_plugin())


def on_change(listener) -> None:
    """Call `listener()` whenever the set of plugins changes (registries use it to rebuild)."""
    _listeners.append(listener)


def _changed() -> None:
    for listener in _listeners:
        listener()


def adapt_generator(model: Any, options: dict[str, Any]) -> Any:
    """The first GeneratorAdapter a plugin gives for `model`, or None."""
    return get_plugin_manager().hook.sphere_adapt_generator(model=model, options=options)


def adapt_autoencoder(model: Any, options: dict[str, Any]) -> Any:
    """The first AutoencoderAdapter a plugin gives for `model`, or None."""
    return get_plugin_manager().hook.sphere_adapt_autoencoder(model=model, options=options)


def collect_priors(register_prior) -> None:
    """Let every plugin register its priors through `register_prior(plugin_name, name, sampler, ...)`, oldest
    plugin first, so a later plugin that replaces a prior comes after the one it replaces."""
    for implementation in get_plugin_manager().hook.sphere_register_priors.get_hookimpls():
        def register(*args: Any, _plugin: str = implementation.plugin_name, **kwargs: Any) -> None:
            register_prior(_plugin, *args, **kwargs)

        implementation.function(register=register)


def example_models() -> list[str]:
    """Specs of the small offline models every plugin offers for contract tests."""
    return [spec for specs in get_plugin_manager().hook.sphere_example_models() for spec in specs]


def model_schemes() -> dict[str, ModelScheme]:
    """Every spec scheme the loaded plugins declare, by name (the first plugin to declare a name wins)."""
    from sphere_plugins.schemes import list_models  # it reads this module's plugin manager

    schemes: dict[str, ModelScheme] = {}
    for scheme in list_models():
        schemes.setdefault(scheme.name, scheme)
    return schemes


def trainable_generators() -> dict[str, TrainableGenerator]:
    """The small trainable generators the loaded plugins offer, by name."""
    offered: dict[str, TrainableGenerator] = {}
    for declared in get_plugin_manager().hook.sphere_trainable_generators():
        for trainable in declared:
            if not isinstance(trainable, TrainableGenerator):
                raise TypeError(f"sphere_trainable_generators must return TrainableGenerator objects, got {trainable!r}")
            offered.setdefault(trainable.name, trainable)
    return offered


def load_model(spec: str | os.PathLike, **options: Any) -> Any:
    """Build or load the model `spec` names ("stylegan2:ffhq.pkl", "timm:resnet18", ...).

    A plain path (str or pathlib.Path) gets its scheme inferred: a save_pretrained folder returns the wrapper,
    a `.pkl` file a StyleGAN2 network, a save_pretrained folder of diffusers its model, and so on.
    """
    from sphere_plugins.schemes import infer_scheme, list_models

    if isinstance(spec, os.PathLike) or (isinstance(spec, str) and _looks_like_path(spec, list_models)):
        scheme = infer_scheme(spec)
        if scheme == "saved":
            from sphere_plugins.saving import load_pretrained

            return load_pretrained(spec, **options)
        spec = f"{scheme}:{os.fspath(spec)}"
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"spec must be a string 'scheme:rest' such as 'stylegan2:tiny', or an existing path, "
                         f"got {spec!r}")
    model = get_plugin_manager().hook.sphere_load_model(spec=spec, options=options)
    if model is None:
        raise UnknownModelError(spec, plugin_names(), [s.usage for s in model_schemes().values()])
    return model


def _looks_like_path(spec: str, list_models) -> bool:
    """A string without a known scheme prefix that names an existing file or folder."""
    if not os.path.exists(os.path.expanduser(spec)):
        return False
    scheme, colon, _ = spec.partition(":")
    return not (colon and scheme in {s.scheme for s in list_models()})
