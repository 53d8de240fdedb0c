"""The exceptions sphere-plugins raises, each saying what is registered and what to do next."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class SpherePluginsError(Exception):
    """Base class of every error this project raises on purpose."""


class _NamedLookupError(SpherePluginsError, KeyError):
    """A KeyError whose message prints as plain text (KeyError would quote it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownPriorError(_NamedLookupError):
    """Raised when a prior name is not registered."""

    def __init__(self, name: object, known: Iterable[str]):
        known = sorted(known)
        super().__init__(
            f"unknown prior {name!r}; registered priors: {', '.join(known)}. "
            "Add one with a plugin implementing sphere_register_priors(register)."
        )
        self.name = name
        self.known = known


class UnknownAdapterError(_NamedLookupError):
    """Raised when no registered adapter recognizes a model."""

    def __init__(self, model: object, kind: str, plugins: Iterable[str]):
        plugins = sorted(plugins)
        super().__init__(
            f"no registered {kind} adapter recognizes a model of type "
            f"{type(model).__module__}.{type(model).__qualname__}; plugins loaded: {', '.join(plugins)}. "
            f"Pass z_shape= for a plain nn.Module, or register an adapter: implement "
            f"sphere_adapt_{kind}(model, options) with @sphere_plugins.hookimpl and call "
            "sphere_plugins.register(your_plugin) (or declare an entry point in group 'sphere_plugins')."
        )
        self.model_type = type(model)
        self.plugins = plugins


class UnknownModelError(_NamedLookupError):
    """Raised when no plugin can load a model spec such as 'stylegan2:ffhq.pkl'."""

    def __init__(self, spec: object, plugins: Iterable[str], forms: Iterable[str] = ()):
        plugins = sorted(plugins)
        forms = list(forms)
        known = "; ".join(forms) if forms else "(no plugin declares a scheme)"
        super().__init__(
            f"no plugin loads the model spec {spec!r}; expected 'scheme:rest', one of: {known}. "
            f"Plugins loaded: {', '.join(plugins)}."
        )
        self.spec = spec
        self.plugins = plugins


class MissingWeightsError(SpherePluginsError, FileNotFoundError):
    """Raised when a weight file a real metric or model needs is not on disk (nothing is downloaded)."""

    def __str__(self) -> str:  # OSError's str would print errno fields instead of the message
        return str(self.args[0]) if self.args else ""

    def __init__(self, filename: str, folder: str, purpose: str, source: str | None = None):
        where = f" (it is published at {source})" if source else ""
        super().__init__(f"{purpose} needs the weight file {filename!r}: put it in {folder}{where}.")
        self.filename = filename
        self.folder = folder


class UnsafePickleError(SpherePluginsError, ValueError):
    """Raised when a pickle names a global outside the allowed set; nothing from it was executed."""


class SavedFolderError(SpherePluginsError, ValueError):
    """Raised when a saved folder (save_pretrained, a plugin's model folder) is incomplete, malformed or hostile;
    the message names the file and the field. Nothing was built from it beyond what its files hold."""


class OutputFolderError(SpherePluginsError, ValueError):
    """Raised before writing into a folder that holds files this project did not write, or before replacing one
    of them; the message names the folder and nothing in it was changed."""


class DataFileError(SpherePluginsError, ValueError):
    """Raised when a data file is missing, truncated or not what its name promises; the message names the file."""


class CorruptWeightsError(SpherePluginsError, ValueError):
    """Raised when a weight file is present but unreadable (truncated download, wrong file)."""

    def __init__(self, path: str, purpose: str, source: str | None = None):
        fresh = f"a fresh copy from {source}" if source else "a fresh copy"
        super().__init__(f"{purpose}: the weight file {path!r} is present but unreadable (truncated or not the right "
                         f"file?); delete it and put {fresh} there, or rerun with --allow-download "
                         "(SPHERE_PLUGINS_ALLOW_DOWNLOAD=1) to let the library fetch it again.")
        self.path = path


class TrainingDivergedError(SpherePluginsError, RuntimeError):
    """Raised when a training run's loss or weights stop being finite; the message names the step. Nothing after
    the last good checkpoint is written."""


class NonFiniteWeightsError(SpherePluginsError, ValueError):
    """Raised when weights read from a file hold NaN or Inf (or overflow the dtype they load into) and the caller
    did not pass allow_nonfinite=True; see sphere_plugins.weights.check_finite."""


_SHOWN_ITEMS = 8


def _atom(value: Any, limit: int) -> str | None:
    kind = type(value)
    if value is None or kind is bool or kind is float:
        return repr(value)
    if kind is int:
        return repr(value) if value.bit_length() <= 64 else f"<int of {value.bit_length()} bits>"
    if kind is str or kind is bytes:
        shown = repr(value[:limit])
        unit = "characters" if kind is str else "bytes"
        return shown if len(value) <= limit else f"{shown}... ({len(value)} {unit})"
    return None


def describe(value: Any, limit: int = 40) -> str:
    """`value` for an error message about untrusted input, in bounded time and length: None, bools, floats, ints
    up to 64 bits and the first `limit` characters of strings and bytes as themselves, a list or tuple of up to 8
    such atoms item by item, anything else as its type and size. Containers are never walked, so shared nesting
    in a file (t = (t, t), 30 deep) cannot make a message exponentially long."""
    atom = _atom(value, limit)
    if atom is not None:
        return atom
    kind = type(value)
    if (kind is list or kind is tuple) and len(value) <= _SHOWN_ITEMS:
        items = [_atom(item, limit) for item in value]
        if all(item is not None for item in items):
            inner = ", ".join(items) + ("," if kind is tuple and len(items) == 1 else "")
            return f"[{inner}]" if kind is list else f"({inner})"
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return f"<{kind.__name__} of {len(value)} item{'' if len(value) == 1 else 's'}>"
    return f"<{kind.__name__}>"
