"""The one PluginManager and nothing else: built-in plugins and installed entry points loaded on first use,
register(), the plugins' names and versions, and typed calls of the adapter and prior hooks."""

from __future__ import annotations

import os
import sys
import warnings
from functools import lru_cache
from importlib import import_module
from importlib.metadata import entry_points, packages_distributions, version
from types import ModuleType
from typing import Any

import pluggy

from sphere_plugins import hookspecs
from sphere_plugins.hookspecs import PROJECT, hookimpl

ENTRY_POINT_GROUP = "sphere_plugins"
# Registered like any plugin, by name on first use (so importing this module imports none of them).
BUILTIN_PLUGINS = ("sphere_plugins.priors", "sphere_plugins.module_adapters", "sphere_plugins.saving")
# Comma-separated entry-point names to load; unset loads all, an empty value loads none.
LOAD_ENV = "SPHERE_PLUGINS_LOAD"
# Any non-empty value prints every hook call to stderr.
TRACE_ENV = "SPHERE_PLUGINS_TRACE"

__all__ = ["hookimpl", "get_plugin_manager", "register", "unregister", "plugin_names", "plugin_version",
           "plugin_versions", "plugin_distributions"]

_manager: pluggy.PluginManager | None = None
_listeners: list = []
# Each plugin loaded from an entry point with the distribution (name, version) that declared it.
_entry_point_distributions: list[tuple[object, tuple[str, str]]] = []


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
        if entry_point.dist is not None:
            _entry_point_distributions.append((plugin, (entry_point.dist.name, entry_point.dist.version)))


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


@lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    return packages_distributions()  # scans every installed distribution: once per process


def _distribution(plugin: object) -> tuple[str, str] | None:
    """(name, version) of the installed distribution that declared `plugin` as an entry point, else the one whose
    top-level package holds it, or None."""
    for loaded, distribution in _entry_point_distributions:
        if loaded is plugin:
            return distribution
    module = plugin.__name__ if isinstance(plugin, ModuleType) else getattr(plugin, "__module__", None) or ""
    for distribution in _distributions().get(module.split(".")[0], []):
        try:
            return distribution, version(distribution)
        except Exception:  # a broken metadata record: no version to show
            continue
    return None


def plugin_version(plugin: object) -> str | None:
    """The version of the distribution that ships `plugin` (a module, class or instance), or None."""
    found = _distribution(plugin)
    return None if found is None else found[1]


def plugin_versions() -> dict[str, str | None]:
    """Every loaded plugin's name with the version of the distribution that ships it."""
    return {name: plugin_version(plugin) for name, plugin in sorted(get_plugin_manager().list_name_plugin())}


def plugin_distributions() -> dict[str, str]:
    """The installed distributions that ship the loaded plugins (sphere-plugins for the built-ins), by name,
    with their versions: what a run's record names to say which code made it."""
    found = (_distribution(plugin) for _, plugin in get_plugin_manager().list_name_plugin())
    return dict(sorted(entry for entry in found if entry is not None))
