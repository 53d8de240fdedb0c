"""The classes a saved folder may rebuild as a wrapper's extra submodule, by the names plugins register through
`sphere_register_saved_modules`. sphere_model.json names one of these; no module path from a file is imported."""

from __future__ import annotations

from torch import nn

from sphere_plugins import plugins

_classes: dict[str, type[nn.Module]] | None = None


def _invalidate() -> None:
    global _classes
    _classes = None


plugins.on_change(_invalidate)


def saved_module_classes() -> dict[str, type[nn.Module]]:
    """Every registered name with its class (built on first use, rebuilt after a plugin is registered)."""
    global _classes
    if _classes is None:
        found: dict[str, type[nn.Module]] = {}
        for implementation in plugins.get_plugin_manager().hook.sphere_register_saved_modules.get_hookimpls():
            def register(name: str, cls: type, _plugin: str = implementation.plugin_name) -> None:
                if not (isinstance(name, str) and name.isidentifier()):
                    raise ValueError(f"plugin {_plugin!r}: saved module names are identifiers, got {name!r}")
                if not (isinstance(cls, type) and issubclass(cls, nn.Module) and callable(getattr(cls, "from_config",
                                                                                               None))):
                    raise ValueError(f"plugin {_plugin!r}: register({name!r}, ...) needs an nn.Module class with a "
                                     f"from_config classmethod, got {cls!r}")
                if found.get(name, cls) is not cls:
                    raise ValueError(f"plugin {_plugin!r} registers the saved module name {name!r}, which "
                                     f"{found[name].__qualname__} already has")
                found[name] = cls

            implementation.function(register=register)
        _classes = found
    return _classes


def saved_module_name(cls: type) -> str:
    """The registered name of `cls`, for save_pretrained; ValueError when it has none."""
    for name, registered in saved_module_classes().items():
        if registered is cls:
            return name
    raise ValueError(f"a wrapper's submodule of class {cls.__module__}.{cls.__qualname__} cannot be saved: its class "
                     "is not registered. Register it in a plugin with sphere_register_saved_modules(register) "
                     f"-> register(name, cls); registered: {', '.join(sorted(saved_module_classes())) or 'none'}")
