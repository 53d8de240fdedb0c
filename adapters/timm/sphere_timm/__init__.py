"""sphere-plugins adapter for timm."""
