"""sphere-plugins adapter for diffusers."""
