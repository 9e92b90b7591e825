"""The plugin's docks: Segment, Postprocessing, Correction, Report, Export, Training."""
