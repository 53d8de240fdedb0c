"""The opt-in to the libraries' own weight downloads (clean-fid's Inception, torchvision's LPIPS backbones).

Offline is the default: a missing file raises MissingWeightsError. `SPHERE_PLUGINS_ALLOW_DOWNLOAD=1` (the
command line's `--allow-download`) lets those libraries fetch what is missing, where the network allows.
"""

from __future__ import annotations

import os

ALLOW_DOWNLOAD_ENV = "SPHERE_PLUGINS_ALLOW_DOWNLOAD"


def downloads_allowed() -> bool:
    """True when the user opted in to downloads (SPHERE_PLUGINS_ALLOW_DOWNLOAD=1, or true/yes)."""
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "").strip().lower() in ("1", "true", "yes")
