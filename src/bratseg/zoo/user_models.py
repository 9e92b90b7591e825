"""Installing a checkpoint into the user's model folder under a name the user chose.

The name comes from a text field (the Training dock's "New model") or the command line, so it is
checked as untrusted input (:func:`check_user_model_name`): it must stay a plain file name inside
``$BRATSEG_HOME/models``, and it must not take the name of a bundled model (which would shadow a
member of the validated default). An existing user model is only replaced when the caller passes
``overwrite=True`` after asking the user (:func:`install_user_model`).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from bratseg.atomic import atomic_write
from bratseg.errors import BratsInputError
from bratseg.zoo.catalogue import (
    CHECKPOINT_SUFFIXES,
    bundled_names,
    read_checkpoint_meta,
    user_models_dir,
)

logger = logging.getLogger(__name__)

#: Longest model name accepted (file systems allow 255 bytes; names are shown in lists).
MAX_MODEL_NAME_LENGTH = 100
#: Names with a meaning of their own in ``napari-brats models`` (the ensemble's card).
RESERVED_MODEL_NAMES = ("default",)


class UserModelExistsError(BratsInputError):
    """A user model of that name exists; replace it only with ``overwrite=True``."""


def check_user_model_name(name: str) -> str:
    """The name a user model is stored under (``<name>.pt``), or a one-line refusal.

    Leading and trailing blanks are dropped. Refused: an empty name, control characters
    (newlines), path separators, ``.``/``..``, a leading dot (hidden file), ``:``, a ``.pt`` /
    ``.pth`` suffix, more than :data:`MAX_MODEL_NAME_LENGTH` characters, the name of a bundled
    model and the reserved names (:data:`RESERVED_MODEL_NAMES`).

    Raises:
        BratsInputError: Why the name cannot be used, and what to do.
    """
    text = str(name).strip()
    shown = repr(name)
    if not text:
        raise BratsInputError("the model name is empty: type a name for the new model")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise BratsInputError(f"model name {shown} contains a line break or control character")
    separators = {"/", "\\", ":", os.sep} | ({os.altsep} if os.altsep else set())
    if any(sep in text for sep in separators) or Path(text).is_absolute():
        raise BratsInputError(
            f"model name {shown} contains a path separator or ':'; give a plain name "
            "(models are stored in the user model folder)"
        )
    if text.startswith("."):
        raise BratsInputError(f"model name {shown} must not start with '.'")
    if text.lower().endswith(CHECKPOINT_SUFFIXES):
        raise BratsInputError(f"model name {shown}: give the name without the .pt suffix")
    if len(text) > MAX_MODEL_NAME_LENGTH:
        raise BratsInputError(
            f"model name is {len(text)} characters long (at most {MAX_MODEL_NAME_LENGTH})"
        )
    if text in bundled_names() or text.lower() in RESERVED_MODEL_NAMES:
        raise BratsInputError(
            f"model name {shown} is the name of a bundled model; choose another name "
            "(e.g. add your initials or the date)"
        )
    return text


def user_model_path(name: str) -> Path:
    """Where the user model ``name`` is stored (the name is checked first).

    Raises:
        BratsInputError: The name is refused (see :func:`check_user_model_name`).
    """
    return user_models_dir() / f"{check_user_model_name(name)}.pt"


def install_user_model(checkpoint: str | Path, name: str, *, overwrite: bool = False) -> Path:
    """Copy a bratseg checkpoint into the user model folder as ``<name>.pt``, atomically.

    Args:
        checkpoint: A checkpoint file (e.g. a training run's ``best.pt``).
        name: The new model's name, checked by :func:`check_user_model_name`.
        overwrite: Replace an existing user model of that name (ask the user first).

    Returns:
        The installed file.

    Raises:
        BratsInputError: The name is refused, or ``checkpoint`` is not a readable bratseg
            checkpoint.
        UserModelExistsError: A user model of that name exists and ``overwrite`` is False.
        OSError: The file system refused the copy (nothing is left half-written).
    """
    target = user_model_path(name)
    read_checkpoint_meta(checkpoint)  # a readable bratseg checkpoint, not any file
    if target.exists() and not overwrite:
        raise UserModelExistsError(
            "a user model of this name exists; choose another name or confirm replacing it",
            target,
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(checkpoint, "rb") as source, atomic_write(target, overwrite=overwrite) as out:
            shutil.copyfileobj(source, out)
    except FileExistsError:  # appeared meanwhile (another install)
        raise UserModelExistsError(
            "a user model of this name exists; choose another name or confirm replacing it",
            target,
        ) from None
    logger.info("installed %s as user model %s", checkpoint, target)
    return target


__all__ = [
    "MAX_MODEL_NAME_LENGTH",
    "UserModelExistsError",
    "check_user_model_name",
    "install_user_model",
    "user_model_path",
]
