"""napari-brats: the napari plugin (reader, writer, sample data, docks) over the bratseg engine."""

__version__ = "0.1.0"
