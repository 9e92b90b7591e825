"""bratseg: the GUI-free engine of napari-brats.

Case I/O, BraTS label conventions, pre- and postprocessing, metrics, models, inference,
training and the ``napari-brats`` command line. Never imports napari, Qt or magicgui.
"""

__version__ = "0.1.0"
