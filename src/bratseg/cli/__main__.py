"""``python -m bratseg.cli`` runs the ``napari-brats`` command line."""

import sys

from bratseg.cli.main import main

sys.exit(main())
