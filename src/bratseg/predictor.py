"""One predictor for every front end: load the models, choose the postprocessing, run inference.

``predict``, the Segment dock, the Worklist batch (:func:`bratseg.review.batch.segment_all`) and
the scoring of model cards (:mod:`bratseg.evaluation.scoring`) all predict a case the same way:

1. resolve the models (zoo names or checkpoint files; none = the bundled default ensemble);
2. load the checkpoints, or take them from a :class:`ModelCache` (a second Segment click does not
   load the networks again);
3. choose the postprocessing: the default ensemble's cross-validated settings, otherwise the first
   model's (:func:`bratseg.zoo.ensemble_postprocess`), with the caller's overrides on top, unless
   the caller gave a whole :class:`~bratseg.postprocess.PostprocessConfig`;
4. run :func:`bratseg.inference.run_inference`.

nnU-Net's ``nnUNetPredictor`` (initialise once, predict many) and micro-sam's annotator state
(the loaded predictor is kept between prompts) are the models for this object. The needs-review
assessment of a prediction belongs to the review layer
(:func:`bratseg.review.assessment.assessment_of`).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bratseg.errors import BratsInputError, CheckpointError
from bratseg.progress import Progress, run_to_end

if TYPE_CHECKING:
    from bratseg.checkpoint import LoadedModel
    from bratseg.inference import InferenceOptions, Prediction
    from bratseg.io import Case
    from bratseg.postprocess import PostprocessConfig

logger = logging.getLogger(__name__)

#: Loaded checkpoints a :class:`ModelCache` keeps (the default ensemble has 5).
DEFAULT_CACHE_SIZE = 8

#: Identifies one loaded checkpoint: (resolved path, mtime ns, size, device).
CacheKey = tuple[str, int, int, str]


class ModelCache:
    """Loaded checkpoints kept between predictions, least recently used dropped first.

    Keyed by the checkpoint file (resolved path, modification time and size, so a rewritten file
    is loaded again) and the device asked for (networks are moved to it in place). Thread-safe:
    the Segment dock loads in a worker thread.

    Args:
        size: Checkpoints kept at most.
    """

    def __init__(self, size: int = DEFAULT_CACHE_SIZE) -> None:
        self.size = max(int(size), 1)
        self._models: OrderedDict[CacheKey, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        #: Checkpoints read from disk by this cache (a measure of what the cache saved).
        self.loads = 0

    def __len__(self) -> int:
        return len(self._models)

    @staticmethod
    def key(path: Path, device: str) -> CacheKey:
        """The cache key of ``path`` on ``device`` (the file's current identity)."""
        if not path.is_file():
            raise CheckpointError("checkpoint file not found", path)
        stat = path.stat()
        return (str(path.resolve()), stat.st_mtime_ns, stat.st_size, device)

    def cached(self, path: Path, device: str) -> LoadedModel | None:
        """The loaded checkpoint when it is cached (marked as just used), else ``None``."""
        key = self.key(path, device)
        with self._lock:
            loaded = self._models.get(key)
            if loaded is not None:
                self._models.move_to_end(key)
            return loaded

    def load(self, path: Path, device: str) -> LoadedModel:
        """The checkpoint at ``path``: from the cache, else loaded and kept.

        A bundled file is checked against the sha256 of its card when it is loaded (the cache
        key holds its size and modification time, so a replaced file is loaded and checked again).

        Raises:
            bratseg.checkpoint.CheckpointError: The file is missing or not a usable checkpoint, or
                a bundled file is not the one its card describes.
        """
        from bratseg.checkpoint import load_checkpoint
        from bratseg.zoo import verify_bundled

        loaded = self.cached(path, device)
        if loaded is not None:
            return loaded
        key = self.key(path, device)
        loaded = verify_bundled([load_checkpoint(path)])[0]
        with self._lock:
            self.loads += 1
            self._models[key] = loaded
            self._models.move_to_end(key)
            while len(self._models) > self.size:
                self._models.popitem(last=False)
        return loaded

    def clear(self) -> None:
        """Forget every loaded checkpoint."""
        with self._lock:
            self._models.clear()


def default_model_paths() -> list[Path]:
    """The bundled default ensemble's checkpoint files.

    Raises:
        BratsInputError: No default model is installed.
    """
    from bratseg.zoo import default_model_names, no_default_model_message, resolve_model

    names = default_model_names()
    if not names:
        raise BratsInputError(no_default_model_message())
    return [Path(resolve_model(n)) for n in names]


def resolve_model_paths(names: Sequence[str | Path] | None) -> list[Path]:
    """Checkpoint files of zoo names or paths; none given = the bundled default ensemble."""
    from bratseg.zoo import resolve_model

    if not names:
        return default_model_paths()
    return [Path(resolve_model(str(n))) for n in names]


class Predictor:
    """Predicts cases with one model or an ensemble, the same way for every front end.

    Args:
        model_paths: Checkpoint files (several = an ensemble, averaged in this order).
        options: How to run (:class:`bratseg.inference.InferenceOptions`; defaults when None).
            A ``postprocess`` given there is used as it is; when ``None`` the predictor chooses
            (:meth:`postprocess_config`).
        postprocess_overrides: PostprocessConfig fields changed on top of the chosen settings
            (``None`` values ignored).
        cache: Where loaded checkpoints are kept between predictors (a fresh one when None).
        models: Checkpoints loaded already, in ``model_paths`` order (they bypass the cache).

    Raises:
        BratsInputError: No model given.
    """

    def __init__(
        self,
        model_paths: Sequence[str | Path],
        options: InferenceOptions | None = None,
        *,
        postprocess_overrides: Mapping[str, Any] | None = None,
        cache: ModelCache | None = None,
        models: Sequence[LoadedModel] | None = None,
    ) -> None:
        from bratseg.inference import InferenceOptions

        self.paths = [Path(p) for p in model_paths]
        if not self.paths:
            raise BratsInputError("no model given: pick at least one model (several = ensemble)")
        self.options = dataclasses.replace(options) if options is not None else InferenceOptions()
        self.overrides = {
            k: v for k, v in dict(postprocess_overrides or {}).items() if v is not None
        }
        self.cache = cache if cache is not None else ModelCache()
        self._models: list[LoadedModel] | None = list(models) if models is not None else None
        self._postprocess: PostprocessConfig | None = None

    @classmethod
    def from_names(
        cls, names: Sequence[str | Path] | None, options: InferenceOptions | None = None, **kw: Any
    ) -> Predictor:
        """A predictor for zoo names or checkpoint paths; none given = the default ensemble."""
        return cls(resolve_model_paths(names), options, **kw)

    @classmethod
    def from_loaded(
        cls, models: Sequence[LoadedModel], options: InferenceOptions | None = None, **kw: Any
    ) -> Predictor:
        """A predictor for checkpoints loaded already (e.g. weights rounded for scoring)."""
        if not models:
            raise BratsInputError("no model given: pick at least one model (several = ensemble)")
        paths = [Path(getattr(m, "path", "") or f"model-{i}") for i, m in enumerate(models)]
        return cls(paths, options, models=models, **kw)

    # ------------------------------------------------------------------ loading
    def load(self) -> Generator[Progress, None, list[LoadedModel]]:
        """Load the checkpoints (those cached are not read again), yielding progress.

        Returns:
            The loaded checkpoints, in ensemble order.

        Raises:
            bratseg.checkpoint.CheckpointError: A checkpoint is missing or unusable.
        """
        if self._models is not None:
            return self._models
        device = str(self.options.device)
        models = []
        for index, path in enumerate(self.paths):
            loaded = self.cache.cached(path, device)
            if loaded is None:
                yield Progress(0, 1, f"loading model {index + 1}/{len(self.paths)}: {path.name}")
                loaded = self.cache.load(path, device)
            models.append(loaded)
        self._models = models
        return models

    @property
    def models(self) -> list[LoadedModel]:
        """The loaded checkpoints (loaded on first use)."""
        return run_to_end(self.load())

    # ------------------------------------------------------------------ settings
    def postprocess_config(self) -> PostprocessConfig:
        """The postprocessing the predictions use.

        ``options.postprocess`` when the caller gave one; otherwise the default ensemble's own
        cross-validated settings, or the first model's for any other choice
        (:func:`bratseg.zoo.ensemble_postprocess`), with :attr:`overrides` applied.
        """
        if self._postprocess is None:
            from bratseg.postprocess import PostprocessConfig
            from bratseg.zoo import ensemble_postprocess

            given = self.options.postprocess
            if given is None:
                config = ensemble_postprocess(self.models, **self.overrides)
            else:
                config = (
                    PostprocessConfig.from_dict(dict(given)) if isinstance(given, dict) else given
                )
                if self.overrides:
                    config = dataclasses.replace(config, **self.overrides)
            self._postprocess = config
        return self._postprocess

    def inference_options(self) -> InferenceOptions:
        """A copy of :attr:`options` with the chosen postprocessing filled in."""
        return dataclasses.replace(self.options, postprocess=self.postprocess_config())

    # ------------------------------------------------------------------ predicting
    def run(
        self, case: Case, should_stop: Callable[[], bool] | None = None
    ) -> Generator[Progress, None, Prediction]:
        """Predict one case: load what is not loaded yet, then run inference.

        Yields:
            :class:`Progress` (loading, then :func:`bratseg.inference.run_inference`'s steps).

        Returns:
            The :class:`bratseg.inference.Prediction` (float16 (3, X, Y, Z) region
            probabilities, uint8 (X, Y, Z) labels) in the case's source grid.

        Raises:
            bratseg.errors.Cancelled: ``should_stop()`` became true.
            BratsInputError: A checkpoint or option is unusable.
        """
        from bratseg.inference import run_inference

        models = yield from self.load()
        options = self.inference_options()
        if case.substituted:
            options = _for_missing_series(options, case.substituted)
        return (yield from run_inference(case, models, options, should_stop=should_stop))

    def predict(
        self,
        case: Case,
        progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Prediction:
        """:meth:`run` to the end, passing each :class:`Progress` to ``progress``."""
        return run_to_end(self.run(case, should_stop), progress)


#: The no-enhancement rule's threshold for a case without T1Gd when the chosen postprocessing
#: has the rule off: T1 then stands in for T1Gd, so T1Gd inside any ET is exactly what T1
#: predicts (ratio 1.0) and every ET becomes NCR, as nothing can show enhancement.
NO_CONTRAST_ET_RULE = 1.01


def _for_missing_series(
    options: InferenceOptions, substituted: Mapping[str, str]
) -> InferenceOptions:
    """``options`` with the no-enhancement rule set for a case lacking a series.

    Without T1Gd the rule is on (every ET -> NCR: nothing can show contrast uptake). Without T1
    (T1Gd in its place) it is off: the rule compares T1Gd with T1, and a copy of T1Gd would
    measure no enhancement anywhere and take away real ET.
    """
    from bratseg.postprocess import PostprocessConfig

    config = options.postprocess
    assert isinstance(config, PostprocessConfig)  # filled in by inference_options()
    if "t1ce" in substituted:
        rule = max(config.et_enhancement_min, NO_CONTRAST_ET_RULE)
    elif "t1" in substituted:
        rule = 0.0
    else:
        return options
    config = dataclasses.replace(config, et_enhancement_min=rule)
    return dataclasses.replace(options, postprocess=config)
