"""napari-brats: the napari plugin (reader, writer, sample data, docks) over the bratseg engine."""

from bratseg import __version__

__all__ = ["__version__"]
