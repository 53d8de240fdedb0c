"""`python -m sphere_plugins ...`: the same command line as the `sphere-plugins` script."""

import sys

from sphere_plugins.cli import main

sys.exit(main())
