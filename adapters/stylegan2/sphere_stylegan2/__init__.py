"""sphere-plugins adapter for stylegan2."""
