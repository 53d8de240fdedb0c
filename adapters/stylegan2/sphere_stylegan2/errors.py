"""The error this adapter raises for network files it cannot read (hostile pickles raise UnsafePickleError)."""

from sphere_plugins.adapter import SpherePluginsError


class NetworkFormatError(SpherePluginsError, ValueError):
    """A network file is truncated, not a pickle, or does not describe a StyleGAN2-ADA network we can build."""
