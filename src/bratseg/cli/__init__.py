"""The ``napari-brats`` command line (GUI-free; ``view`` is the only command that opens napari)."""
