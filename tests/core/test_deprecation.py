import types
import warnings

import pytest

from sphere_plugins.deprecation import renamed_names


def _module_with_a_renamed_function():
    module = types.ModuleType("somewhere.models")
    module.new_name = lambda: "the new one"
    module.__getattr__ = renamed_names(module.__name__, vars(module), {"old_name": "new_name"})
    return module


def test_an_old_name_returns_the_new_object_and_warns_naming_both():
    module = _module_with_a_renamed_function()
    with pytest.warns(DeprecationWarning, match=r"somewhere\.models\.old_name is deprecated; use "
                                                r"somewhere\.models\.new_name"):
        assert module.old_name is module.new_name


def test_an_unknown_name_is_an_attribute_error_without_a_warning():
    module = _module_with_a_renamed_function()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError, match="module 'somewhere.models' has no attribute 'missing'"):
            module.missing  # noqa: B018
        assert not hasattr(module, "also_missing")
