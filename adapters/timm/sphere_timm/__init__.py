"""sphere-plugins adapter for timm: any timm backbone as a spherical autoencoder's encoder."""

from sphere_timm.autoencoder import TimmAutoencoder, build_timm_autoencoder
from sphere_timm.encoder import TimmEncoder

__all__ = ["TimmAutoencoder", "TimmEncoder", "build_timm_autoencoder"]
