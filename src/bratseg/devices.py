"""The compute devices a user can ask for, one list for the command line and the docks.

Kept free of torch so that ``napari-brats --help`` and the argument parsers stay fast;
:mod:`bratseg.inference.device` resolves a choice to a real device.
"""

#: ``auto`` picks CUDA, then MPS, then the CPU; ``cuda:N`` is accepted where a device is typed.
DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
