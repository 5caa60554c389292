"""A trained run as a deployable OOD detector: raw images in, OOD scores and class names out.

A :class:`Detector` holds the (n+1)-class classifier together with everything needed to use it
on images nobody prepared: the ID input shape, the ID normalisation statistics, the class names,
the score it reports and the run's flat config. It saves to one file that
``torch.load(path, weights_only=True)`` reads, so loading never runs pickled code.

    from netinv.detector import Detector
    detector = Detector.from_state_file("runs/x/state.pt")  # a pipeline RoundState
    detector.save("detector.pt")
    detector = Detector.load("detector.pt")
    detector.score(images)  # (N,) float32, higher = more likely OOD
    detector(images)  # the same scores, as pytorch-ood's detectors are called
    detector.predict(images)  # ["7 - seven", "garbage", ...]
    Detector.load("mnist")  # a shipped preset by name (package data, see netinv.presets)
    detector.fit(id_train_images)  # the scores that need ID training images, below
    detector.score(images, score="knn")  # distance to the 10th nearest ID training feature
    detector.score(images, score="layer_stats")  # per-layer channel statistics (far-OOD)
    detector.score(images, score="fused")  # both and the detector's own score, standardised

Batches from a torchvision pipeline (``ToTensor()`` then ``Normalize(mean, std)``) are scored
as they are when the detector is told that normalisation::

    detector = Detector.load("mnist", input_normalization=((0.1307,), (0.3081,)))
    detector(normalized_batch)  # undone to [0, 1] pixels, then the detector's own is applied

Input images may be 8-bit pixel levels in [0, 255] of any integer dtype (uint8, uint16, int32,
...; taken as they are, not rescaled, so 16-bit images must be scaled to 8 bits first) or float
in [0, 1], laid out (N, H, W), (N, H, W, C) or (N, C, H, W) with 1, 3 or 4 channels (alpha is
dropped), at any size. They are converted to the ID shape exactly as OOD sets are during a run
(:func:`netinv.data.to_shape`: luminance greyscale or channel replication, antialiased bilinear
resize, on 8-bit pixels), then normalised with the ID statistics. Float input is therefore
quantised to 8 bits first, as every training image was.

A detector file is validated on load (required keys and types, finite statistics and weights,
a bounded shape, a known score and format version, and a KNN bank of unit rows, layer
statistics and fusion statistics that fit the classifier when it has them); a file that fails
raises ``ValueError`` naming the file and the key.
"""

from __future__ import annotations

import copy
import io
import json
import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from netinv.data import to_shape
from netinv.inference import Normalizer, Outputs, predict_outputs
from netinv.knn import (DEFAULT_BANK_SIZE, DEFAULT_K, KNN, check_bank, check_k, knn_distance,
                        normalize_features)
from netinv.layer_stats import LAYER_STATS, LayerGaussians, fit_layer_gaussians
from netinv.models import build_model, check_shape
from netinv.scores import FUSED, SCORES
from netinv.state import RoundState

if TYPE_CHECKING:
    from netinv.config import Config
    from netinv.data import PreparedData

FORMAT = "netinv.detector"  # value of the "format" key in a saved file
FORMAT_VERSION = 2  # bump when the saved keys change; load reads this version only
# every key of a saved file (besides "format") and its type
PAYLOAD_TYPES: dict[str, type | tuple[type, ...]] = {
    "format_version": int, "classifier": dict, "model": dict, "shape": list, "mean": list,
    "std": list, "classes": list, "score": str, "amp": bool,
    "batch_size": (int, type(None)),  # None = by device and body
    "config_json": str,
}
# optional keys: the KNN score's feature bank (float16, L2-normalised rows) and its k
KNN_PAYLOAD_TYPES: dict[str, type] = {"knn_bank": Tensor, "knn_k": int}
# optional keys: the layer-statistics score (netinv.layer_stats), one list entry per convolution
# from the first one it uses on
LAYER_PAYLOAD_TYPES: dict[str, type] = {"layer_centers": list, "layer_precisions": list,
                                        "layer_scales": Tensor}
LAYER_FIRST_KEY = "layer_first"  # optional int beside them: the first convolution used; absent = 0
# optional keys: the fused score's parts and their held-out ID (mean, std), shape (S, 2)
FUSION_PAYLOAD_TYPES: dict[str, type] = {"fusion_scores": list, "fusion_stats": Tensor}
HELD_OUT_SIZE = 2000  # fit's held-out ID images (layer scales, fusion statistics), at most
FUSION_MIN_STD = 1e-12  # a fused part must vary more than this on the held-out images
CLASSIFIERS = ("Classifier", "PlainClassifier")  # model classes a detector may hold
GARBAGE = "garbage"  # name predict returns for the garbage class
LAYOUTS = ("auto", "NCHW", "NHWC")
# how far outside [0, 1] a de-normalised pixel may lie (float rounding) before it is refused
DENORMALIZE_TOLERANCE = 1e-3


class Detector:
    """An (n+1)-class classifier packaged with its ID shape, statistics, class names and score.

    Build one with :meth:`from_run`, :meth:`from_state`, :meth:`from_state_file` or
    :meth:`load`; the constructor is for those.

    Args:
        classifier: The trained classifier over K = n + 1 classes (garbage last), a
            :class:`~netinv.models.Classifier` or :class:`~netinv.models.PlainClassifier`
            with finite weights. The detector keeps its own copy in eval mode.
        shape: ID input (C, H, W): C in {1, 3}, H and W in [8, ``netinv.models.MAX_SIDE``].
        mean: Per-channel ID train mean, pixels in [0, 1], finite; length C.
        std: Per-channel ID train std, finite and > 0; length C.
        classes: The n ID class names.
        score: Default score, one of :data:`netinv.scores.SCORES`, or ``"knn"``,
            ``"layer_stats"`` or ``"fused"`` when what they need is given.
        config: The run's flat config (``Config.to_flat()``); ``{}`` when unknown.
        amp: bf16 autocast in the forward pass where it pays (``rounds/amp``;
            :func:`netinv.inference.bf16_pays`: CUDA, AMX, AMD Zen 4 and later), so the
            precision follows the host: scores reproduce the run's on a host of the same
            kind, and to float rounding elsewhere. False gives float32 scores everywhere.
        batch_size: Images per forward pass, >= 1; None = by the device it runs on and the
            classifier's body (:func:`netinv.inference.eval_batch_size`).
        input_normalization: ``(mean, std)`` the caller's float batches were normalised with
            (torchvision's ``Normalize(mean, std)`` after ``ToTensor()``): each has one finite
            entry per input channel (or one for all), std > 0. Float input is mapped back to
            [0, 1] pixels by ``x * std + mean`` before anything else; uint8 input is taken as
            raw pixels. None: float input is already in [0, 1].
        knn_bank: (M, F) L2-normalised penultimate features of ID training images for the KNN
            score (:mod:`netinv.knn`; build one with :meth:`fit`); None = no KNN score.
        knn_k: The KNN score's k, 1 <= k <= M.
        layer_stats: The layer-statistics score's fit (:mod:`netinv.layer_stats`), one layer
            per convolution of the classifier from its ``first`` on; None = no such score.
        fusion: The fused score's parts and their ID statistics (:class:`Fusion`); None = no
            fused score.

    Raises:
        ValueError: Inconsistent or out-of-range shape, statistics, class names, score name,
            batch size, input normalisation, KNN bank, layer statistics or fusion, or
            non-finite weights.
    """

    def __init__(self, classifier: nn.Module, *, shape: tuple[int, int, int] | list[int],
                 mean: tuple[float, ...] | list[float], std: tuple[float, ...] | list[float],
                 classes: tuple[str, ...] | list[str], score: str = "ue_tiered",
                 config: dict[str, Any] | None = None, amp: bool = False,
                 batch_size: int | None = None,
                 input_normalization: Normalization | None = None,
                 knn_bank: Tensor | None = None, knn_k: int = DEFAULT_K,
                 layer_stats: LayerGaussians | None = None, fusion: Fusion | None = None
                 ) -> None:
        shape = check_shape(list(shape))
        stats_ok = (len(mean) == len(std) == shape[0]
                    and all(math.isfinite(m) for m in mean)
                    and all(math.isfinite(s) and s > 0 for s in std))
        if not stats_ok:
            raise ValueError(f"`mean` and `std` must have C={shape[0]} finite entries and std > 0, "
                             f"got mean={list(mean)}, std={list(std)}.")
        if len(classes) + 1 != classifier.num_classes:
            raise ValueError(f"the classifier must have len(classes) + 1 outputs, got "
                             f"{len(classes)} classes and num_classes={classifier.num_classes}.")
        if tuple(classifier.in_shape) != shape:
            raise ValueError(f"the classifier's input must be the ID shape, got "
                             f"in_shape={tuple(classifier.in_shape)}, shape={shape}.")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got batch_size={batch_size}.")
        bad = [k for k, v in classifier.state_dict().items()
               if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise ValueError(f"the classifier's weights must be finite, got NaN or inf in "
                             f"{', '.join(bad)}.")
        if knn_bank is not None:  # checked as stored: float16 overflows past 65504
            if not isinstance(knn_bank, Tensor):
                raise ValueError(f"`knn_bank` must be a tensor (M, F) or None, got "
                                 f"type={type(knn_bank).__name__}.")
            knn_bank = knn_bank.detach().to("cpu", torch.float16).clone()  # never the caller's
            check_bank(knn_bank, knn_k, _feature_dim(classifier))
        elif isinstance(knn_k, bool) or not isinstance(knn_k, numbers.Integral) or knn_k < 1:
            raise ValueError(f"`knn_k` must be an integer >= 1, got knn_k={knn_k!r}.")
        self.knn_bank: Tensor | None = knn_bank  # float16 on the CPU, where KNN is scored
        self.knn_k = int(knn_k)
        if layer_stats is not None:
            layer_stats = copy.deepcopy(layer_stats)
            layer_stats.check(_conv_widths(classifier))
        self.layer_stats = layer_stats
        self.fusion: Fusion | None = None
        if fusion is not None:
            fusion = copy.deepcopy(fusion)
            fusion.check(self)
        self.fusion = fusion
        self.classifier = copy.deepcopy(classifier).eval()
        self.shape: tuple[int, int, int] = shape  # type: ignore[assignment]
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.classes = tuple(str(c) for c in classes)
        self.score_name = self.check_score(score)
        self.config = dict(config or {})
        self.amp = bool(amp)
        self.batch_size = None if batch_size is None else int(batch_size)
        self.input_normalization = input_normalization

    @property
    def input_normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """``(mean, std)`` the caller's float batches are normalised with; None = [0, 1] pixels.

        Setting it checks the value (see the class's ``input_normalization``).
        """
        if self._normalization is None:
            return None
        mean, std = self._normalization
        return tuple(mean.flatten().tolist()), tuple(std.flatten().tolist())

    @input_normalization.setter
    def input_normalization(self, value: Normalization | None) -> None:
        self._normalization = _check_normalization(value)

    # ------------------------------------------------------------------------- construction

    @classmethod
    def from_run(cls, classifier: nn.Module, config: Config, data: PreparedData, *,
                 score: str = "ue_tiered") -> Detector:
        """The detector of a live run: its classifier, config and prepared data.

        Args:
            classifier: E.g. ``run_rounds(...).classifier``; copied, so later training does not
                change the detector.
            config: The run's config.
            data: The run's prepared data (shape, mean, std and class names are taken from it).
            score: Default score name.
        """
        return cls(classifier, shape=data.shape, mean=data.mean, std=data.std,
                   classes=data.classes, score=score, config=config.to_flat(),
                   amp=config.rounds.amp, batch_size=config.rounds.eval_batch_size)

    @classmethod
    def from_state(cls, state: RoundState, *, score: str = "ue_tiered",
                   data: PreparedData | None = None,
                   shape: tuple[int, int, int] | None = None,
                   mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
                   classes: tuple[str, ...] | None = None) -> Detector:
        """The detector of a :class:`~netinv.state.RoundState`; its classifier is rebuilt from
        the state's ``classifier_spec``.

        Shape, statistics and class names come from the state's own fields; an explicit
        argument, else ``data``, overrides them (for a state built in memory without them).

        Raises:
            ValueError: One of them is given nowhere; the message names which.
        """
        meta = {"shape": state.shape, "mean": state.mean, "std": state.std,
                "classes": state.classes}
        if data is not None:
            meta.update(shape=data.shape, mean=data.mean, std=data.std, classes=data.classes)
        given = {"shape": shape, "mean": mean, "std": std, "classes": classes}
        meta.update({k: v for k, v in given.items() if v is not None})
        missing = [k for k, v in meta.items() if v is None or len(v) == 0]
        if missing:
            raise ValueError(f"the state lacks {', '.join(missing)}: pass them (or data=) to "
                             f"from_state, got {', '.join(f'{k}={meta[k]!r}' for k in missing)}.")
        classifier = build_model(state.classifier_spec)
        classifier.load_state_dict(state.classifier)
        config = dict(state.config)
        return cls(classifier, **meta, score=score, config=config,
                   amp=bool(config.get("rounds/amp", False)),
                   batch_size=config.get("rounds/eval_batch_size"))

    @classmethod
    def from_state_file(cls, path: str | os.PathLike, **kwargs: Any) -> Detector:
        """:meth:`from_state` on a state file written by ``RoundState.save``."""
        return cls.from_state(RoundState.load(path), **kwargs)

    # ------------------------------------------------------------------------- persistence

    def save(self, path: str | os.PathLike) -> None:
        """Write one file readable by ``torch.load(path, weights_only=True)`` (and :meth:`load`).

        It holds only tensors, strings, numbers, lists and dicts: the classifier's state dict
        and spec (what rebuilds it), the metadata, and the run's flat config as a JSON string.
        """
        payload = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "classifier": {k: v.detach().cpu() for k, v in self.classifier.state_dict().items()},
            "model": self.classifier.spec(),
            "shape": list(self.shape),
            "mean": list(self.mean),
            "std": list(self.std),
            "classes": list(self.classes),
            "score": self.score_name,
            "amp": self.amp,
            "batch_size": self.batch_size,
            "config_json": json.dumps(self.config),
        }
        if self.knn_bank is not None:
            payload.update(knn_bank=self.knn_bank.clone(), knn_k=self.knn_k)
        if self.layer_stats is not None:
            payload.update(layer_centers=[c.clone() for c in self.layer_stats.centers],
                           layer_precisions=[p.clone() for p in self.layer_stats.precisions],
                           layer_scales=self.layer_stats.scales.clone(),
                           **{LAYER_FIRST_KEY: self.layer_stats.first})
        if self.fusion is not None:
            payload.update(fusion_scores=list(self.fusion.scores),
                           fusion_stats=self.fusion.stats.clone())
        torch.save(payload, os.fspath(path))

    @classmethod
    def load(cls, path: str | os.PathLike | io.BytesIO, *,
             device: str | torch.device = "cpu",
             input_normalization: Normalization | None = None) -> Detector:
        """Read and validate a file written by :meth:`save` (safely: ``weights_only=True``).

        Args:
            path: The file, its bytes as a ``BytesIO``, or the name of a shipped preset
                (``"mnist"``, ``"fashionmnist"``, ``"cifar10"``: :data:`netinv.presets.PRESETS`),
                which loads ``netinv/presets/<name>.pt`` from the installed package. A file in
                the working directory named like a preset is read as ``"./mnist"``.
            device: Where the classifier runs.
            input_normalization: See the class; None = float input in [0, 1].

        Raises:
            ValueError: The file is not a netinv detector of this format version, or a key is
                missing, ill-typed or out of range (non-finite statistics or weights, a shape
                beyond the bounds, an unknown score); the message names the file and the key.
        """
        from netinv.presets import PRESETS, preset_detector_path

        if isinstance(path, str) and path in PRESETS:
            path = preset_detector_path(path)
        name = "the given bytes" if isinstance(path, io.BytesIO) else repr(os.fspath(path))
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several types; its text advises unsafe loading
            raise ValueError(f"{name} is not a netinv detector written by Detector.save: it "
                             f"cannot be read ({type(err).__name__}).") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError(f"the file must be a netinv detector written by Detector.save, "
                             f"got path={name}.")
        try:
            detector = cls._from_payload(payload)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} is not a valid netinv detector: "
                             f"{err.args[0] if err.args else err}") from None
        detector.input_normalization = input_normalization
        return detector.to(device)

    @classmethod
    def _from_payload(cls, payload: dict[str, Any]) -> Detector:
        """A detector from a loaded file's dict; every error names the key at fault."""
        for key, kind in PAYLOAD_TYPES.items():
            if key not in payload:
                raise ValueError(f"key {key!r} is missing.")
            value = payload[key]
            if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
                names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple)
                                                          else (kind,)))
                raise ValueError(f"key {key!r} must be {names}, got "
                                 f"type={type(value).__name__}.")
        version = payload["format_version"]
        if version != FORMAT_VERSION:
            fix = "update netinv" if version > FORMAT_VERSION else "export it again"
            raise ValueError(f"key 'format_version' must be {FORMAT_VERSION}, got "
                             f"format_version={version}; {fix}.")
        items = {"mean": ((int, float), "numbers"), "std": ((int, float), "numbers"),
                 "classes": (str, "strings")}
        for key, (kind, what) in items.items():
            if not all(isinstance(v, kind) and not isinstance(v, bool) for v in payload[key]):
                raise ValueError(f"key {key!r} must be a list of {what}, got {payload[key]!r}.")
        if payload["model"].get("class") not in CLASSIFIERS:
            raise ValueError(f"key 'model' must describe one of {', '.join(CLASSIFIERS)}, got "
                             f"class={payload['model'].get('class')!r}.")
        try:
            classifier = build_model(payload["model"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"key 'model': {err}") from None
        try:
            classifier.load_state_dict(payload["classifier"])
        except (RuntimeError, TypeError, AttributeError) as err:
            raise ValueError(f"key 'classifier' does not fit key 'model': "
                             f"{str(err).splitlines()[0]}") from None
        try:
            config = json.loads(payload["config_json"])
        except json.JSONDecodeError as err:
            raise ValueError(f"key 'config_json' must hold JSON: {err}") from None
        if not isinstance(config, dict):
            raise ValueError(f"key 'config_json' must hold a JSON object, got "
                             f"type={type(config).__name__}.")
        knn: dict[str, Any] = {}
        if payload["score"] == KNN and "knn_bank" not in payload:
            raise ValueError("key 'score' is 'knn', but the file has no 'knn_bank'.")
        if _optional_group(payload, KNN_PAYLOAD_TYPES, "the KNN bank and its k"):
            try:
                check_bank(payload["knn_bank"], payload["knn_k"], _feature_dim(classifier))
            except ValueError as err:
                raise ValueError(f"key 'knn_bank': {err}") from None
            knn = {"knn_bank": payload["knn_bank"], "knn_k": payload["knn_k"]}
        extra: dict[str, Any] = {}
        if _optional_group(payload, LAYER_PAYLOAD_TYPES, "the layer statistics"):
            try:
                extra["layer_stats"] = LayerGaussians(
                    list(payload["layer_centers"]), list(payload["layer_precisions"]),
                    payload["layer_scales"], payload.get(LAYER_FIRST_KEY, 0))
                extra["layer_stats"].check(_conv_widths(classifier))
            except (ValueError, TypeError, AttributeError, RuntimeError) as err:
                raise ValueError(f"keys 'layer_centers', 'layer_precisions', 'layer_scales', "
                                 f"'{LAYER_FIRST_KEY}': {err}") from None
        if _optional_group(payload, FUSION_PAYLOAD_TYPES, "the fusion"):
            extra["fusion"] = Fusion(tuple(payload["fusion_scores"]), payload["fusion_stats"])
        for name, key in ((LAYER_STATS, "layer_centers"), (FUSED, "fusion_scores")):
            if payload["score"] == name and key not in payload:
                raise ValueError(f"key 'score' is {name!r}, but the file has no {key!r}.")
        try:
            return cls(classifier, shape=payload["shape"], mean=payload["mean"],
                       std=payload["std"], classes=payload["classes"], score=payload["score"],
                       config=config, amp=payload["amp"], batch_size=payload["batch_size"],
                       **knn, **extra)
        except ValueError as err:
            if "fusion" in extra and "fused score" in str(err):
                raise ValueError(f"keys 'fusion_scores', 'fusion_stats': {err}") from None
            raise

    def to(self, device: str | torch.device) -> Detector:
        """Move the classifier to ``device``; returns self. A KNN bank stays on the CPU, where
        the KNN score's similarities are computed (features come back to the CPU)."""
        self.classifier.to(device)
        return self

    # ------------------------------------------------------------------------- inference

    def prepare(self, images: Tensor | np.ndarray, *, layout: str = "auto") -> Tensor:
        """Raw images -> uint8 (N, C, H, W) in the ID shape (not yet normalised).

        Args:
            images: A batch: 8-bit levels in [0, 255] of any integer dtype (not rescaled) or
                float in [0, 1];
                (N, H, W), (N, H, W, C) or (N, C, H, W); C in {1, 3, 4} (alpha dropped); any
                H, W >= 1.
            layout: ``"NCHW"`` or ``"NHWC"`` for 4-D input; ``"auto"`` takes the axis of size
                1, 3 or 4 as channels and asks for a layout when both axes 1 and 3 qualify.

        Raises:
            TypeError: Not a tensor or array, or a bool/complex dtype.
            ValueError: Wrong number of axes, empty batch or image, a channel count other than
                1, 3 or 4, or values outside the dtype's range (or NaN).
        """
        x = _as_tensor(images)
        if layout not in LAYOUTS:
            raise ValueError(f"`layout` must be one of {', '.join(LAYOUTS)}, got "
                             f"layout={layout!r}.")
        if x.dim() == 3:
            x = x.unsqueeze(1)  # N, 1, H, W
        elif x.dim() == 4:
            x = _channels_first(x, layout)
        else:
            hint = " (one image? add a batch axis: images[None])" if x.dim() == 2 else ""
            raise ValueError(f"images must be a batch shaped (N, H, W), (N, H, W, C) or "
                             f"(N, C, H, W), got shape={tuple(x.shape)}{hint}.")
        if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
            raise ValueError(f"images must hold at least one image of at least 1x1 pixels, got "
                             f"shape={tuple(x.shape)} (as N, C, H, W).")
        if self._normalization is not None and x.is_floating_point():
            x = _denormalize(x, self._normalization)  # N, C, H, W in [0, 1]
        if x.shape[1] == 4:
            x = x[:, :3]  # drop alpha
        return to_shape(_to_uint8(x).contiguous(), self.shape)  # N, C, H, W

    @torch.no_grad()
    def logits(self, images: Tensor | np.ndarray, *, layout: str = "auto") -> Tensor:
        """Classifier logits (N, K) float32 on the CPU, K = n + 1 (garbage last)."""
        return self.outputs(images, layout=layout).logits

    @torch.no_grad()
    def features(self, images: Tensor | np.ndarray, *, layout: str = "auto") -> Tensor:
        """Penultimate features (N, F) float32 on the CPU: what the KNN score compares."""
        return self.logits_and_features(images, layout=layout)[1]

    @torch.no_grad()
    def logits_and_features(self, images: Tensor | np.ndarray, *, layout: str = "auto"
                            ) -> tuple[Tensor, Tensor]:
        """:meth:`logits` and :meth:`features` of the same forward passes (one pass, not two)."""
        out = self.outputs(images, layout=layout, features=True)
        return out.logits, out.features

    @torch.no_grad()
    def outputs(self, images: Tensor | np.ndarray, *, layout: str = "auto",
                features: bool = False, layer_means: bool = False) -> Outputs:
        """Logits, and the penultimate ``features`` and per-convolution channel means
        (``layer_means``) when asked for, of one set of forward passes, on the CPU
        (:func:`netinv.inference.predict_outputs`); :meth:`scores_from` scores them."""
        pixels = self.prepare(images, layout=layout)
        device = next(self.classifier.parameters()).device
        return predict_outputs(self.classifier, pixels,
                               normalize=Normalizer(self.mean, self.std, device),
                               batch_size=self.batch_size, amp=self.amp, features=features,
                               layer_means=layer_means).cpu()

    def fit(self, images: Tensor | np.ndarray, *, k: int = DEFAULT_K,
            bank_size: int | None = DEFAULT_BANK_SIZE, seed: int = 0,
            fused_logit_score: str | None = None, layer_stats_first: int = 0,
            layout: str = "auto") -> Detector:
        """Fit the scores that need ID training images: ``"knn"`` (:mod:`netinv.knn`),
        ``"layer_stats"`` (:mod:`netinv.layer_stats`) and ``"fused"``.

        A seeded draw of ``images`` is split: up to ``HELD_OUT_SIZE`` of them (a fifth when
        there are fewer than 5 x that, at least 2) are held out of the bank, the rest (at most
        ``bank_size``) form it: the KNN features and the layers' centres and covariances. The
        held-out images give each layer's scale and each fused part's mean and std (held out
        of the bank, so a knn distance is never to the image itself; the classifier may well
        have trained on them). ``"fused"`` sums the standardised ``fused_logit_score``, ``"knn"`` and
        ``"layer_stats"``: each part is (score - mean) / std, so each counts alike.

        Args:
            images: ID *training* images (never the test set the scores are measured on), at
                least 4, in any form :meth:`prepare` takes.
            k: The KNN score's k, 1 <= k <= the bank's size.
            bank_size: At most this many images form the bank; None = all not held out.
            seed: Seeds the draw.
            fused_logit_score: The fused score's logit part, one of
                :data:`netinv.scores.SCORES`; None = the detector's own score, or ``energy``
                when that is not a logit score.
            layer_stats_first: The first convolution (0-based, forward order) whose channel
                means ``"layer_stats"`` uses, in [0, the classifier's convolutions).
            layout: See :meth:`prepare`.

        Returns:
            self; :meth:`save` keeps what was fitted (the bank as float16, M x F values).

        Raises:
            ValueError: Fewer than 4 images, ``bank_size`` < 2, ``k`` outside [1, bank
                size], an unknown ``fused_logit_score``, ``layer_stats_first`` out of range,
                or a fused part that is constant on the held-out images.
        """
        if fused_logit_score is not None and fused_logit_score not in SCORES:
            raise ValueError(f"`fused_logit_score` must be one of {', '.join(SCORES)}, got "
                             f"fused_logit_score={fused_logit_score!r}.")
        if bank_size is not None and (isinstance(bank_size, bool)
                                      or not isinstance(bank_size, numbers.Integral)
                                      or bank_size < 2):
            raise ValueError(f"`bank_size` must be an integer >= 2 or None, got "
                             f"bank_size={bank_size!r}.")
        convolutions = len(_conv_widths(self.classifier))
        if (isinstance(layer_stats_first, bool)
                or not isinstance(layer_stats_first, numbers.Integral)
                or not 0 <= layer_stats_first < convolutions):
            raise ValueError(f"`layer_stats_first` must be an integer in [0, {convolutions - 1}] "
                             f"(the classifier's {convolutions} convolutions), got "
                             f"layer_stats_first={layer_stats_first!r}.")
        images = _as_tensor(images)
        if images.dim() < 3 or len(images) < 4:
            raise ValueError(f"fit needs a batch of at least 4 ID training images (2 for the "
                             f"bank, 2 held out), got shape={tuple(images.shape)}.")
        count = len(images)
        held = held_out_size(count)
        size = min(count - held, bank_size or count)
        k = check_k(k, size)
        order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
        bank_idx, held_idx = order[:size].sort().values, order[size:size + held].sort().values
        out = self.outputs(images[torch.cat([bank_idx, held_idx])], layout=layout,
                            features=True, layer_means=True)
        # everything is computed and checked first, then assigned: a refused fit leaves the
        # detector as it was
        bank = normalize_features(out.features[:size]).half()
        layer_stats = fit_layer_gaussians([m[:size] for m in out.layer_means],
                                          [m[size:] for m in out.layer_means],
                                          first=int(layer_stats_first))
        base = fused_logit_score or (self.score_name if self.score_name in SCORES
                                     else "energy")
        parts = {base: SCORES[base](out.logits[size:]),
                 KNN: knn_distance(bank, out.features[size:], k),
                 LAYER_STATS: layer_stats.score([m[size:] for m in out.layer_means])}
        stats = torch.stack([torch.stack([p.mean(), p.std()]) for p in parts.values()])
        flat = [name for (name, _), (_, std) in zip(parts.items(), stats.tolist())
                if not std > FUSION_MIN_STD]
        if flat:
            raise ValueError(f"the fused score's part {flat[0]!r} is constant on the "
                             f"{held} held-out images (std <= {FUSION_MIN_STD}): it cannot be "
                             f"standardised; pass another fused_logit_score or more images.")
        self.knn_bank, self.knn_k, self.layer_stats = bank, k, layer_stats
        self.fusion = Fusion(tuple(parts), stats)
        return self

    def score(self, images: Tensor | np.ndarray, *, score: str | None = None,
              layout: str = "auto") -> Tensor:
        """OOD scores, shape (N,) float32; higher = more likely OOD.

        Args:
            images: See :meth:`prepare`.
            score: One of :data:`netinv.scores.SCORES`, or ``"knn"``, ``"layer_stats"`` or
                ``"fused"`` after :meth:`fit`; None = the detector's own (``score_name``).
            layout: See :meth:`prepare`.
        """
        name = self.score_name if score is None else score
        return self.scores(images, (name,), layout=layout)[name]

    def scores(self, images: Tensor | np.ndarray, names: Sequence[str], *,
               layout: str = "auto") -> dict[str, Tensor]:
        """Several scores of the same forward passes: name -> (N,) float32, as :meth:`score`."""
        return self.logits_and_scores(images, names, layout=layout)[1]

    @torch.no_grad()
    def logits_and_scores(self, images: Tensor | np.ndarray, names: Sequence[str], *,
                          layout: str = "auto") -> tuple[Tensor, dict[str, Tensor]]:
        """:meth:`logits` and :meth:`scores` of the same forward passes."""
        names = [self.check_score(n) for n in names]
        parts = set(names) | (set(self.fusion.scores) if FUSED in names else set())
        out = self.outputs(images, layout=layout, features=KNN in parts,
                            layer_means=LAYER_STATS in parts)
        return out.logits, self.scores_from(out, names)

    def scores_from(self, out: Outputs, names: Sequence[str]) -> dict[str, Tensor]:
        """Scores ``names`` (checked by the caller, :meth:`check_score`) from
        :meth:`outputs` that hold the features and layer means they need."""
        parts = [*(self.fusion.scores if FUSED in names else ()), *names]
        result: dict[str, Tensor] = {}
        for name in dict.fromkeys(parts):  # each once, the fused score's parts first
            if name == KNN:
                result[name] = knn_distance(self.knn_bank, out.features, self.knn_k)
            elif name == LAYER_STATS:
                result[name] = self.layer_stats.score(out.layer_means)
            elif name == FUSED:
                result[name] = sum((result[n] - mean) / std for n, (mean, std)
                                   in zip(self.fusion.scores, self.fusion.stats.tolist()))
            else:
                result[name] = SCORES[name](out.logits)
        return {name: result[name] for name in names}

    def __call__(self, images: Tensor | np.ndarray, *, score: str | None = None,
                 layout: str = "auto") -> Tensor:
        """:meth:`score`: OOD scores (N,), higher = more likely OOD, as pytorch-ood's
        detectors return them."""
        return self.score(images, score=score, layout=layout)

    def predict(self, images: Tensor | np.ndarray, *, layout: str = "auto") -> list[str]:
        """The argmax class over all K = n + 1 classes: an ID class name or ``"garbage"``."""
        names = (*self.classes, GARBAGE)
        return [names[i] for i in self.logits(images, layout=layout).argmax(dim=1).tolist()]

    def __repr__(self) -> str:
        knn = ("" if self.knn_bank is None
               else f", knn_bank={len(self.knn_bank)}, knn_k={self.knn_k}")
        layers = ("" if self.layer_stats is None
                  else f", layer_stats={len(self.layer_stats.centers)} layers"
                  + (f" from convolution {self.layer_stats.first}" if self.layer_stats.first
                     else ""))
        return (f"Detector(shape={self.shape}, classes={len(self.classes)}, "
                f"score={self.score_name!r}, id={self.config.get('data/id', '?')!r}"
                f"{knn}{layers})")

    def check_score(self, name: str) -> str:
        """``name`` if this detector can compute it (:data:`netinv.scores.SCORES`, and
        ``"knn"``, ``"layer_stats"`` and ``"fused"`` once :meth:`fit` has run), else
        ``ValueError`` saying what can."""
        needs = {KNN: self.knn_bank, LAYER_STATS: self.layer_stats, FUSED: self.fusion}
        if name in needs:
            if needs[name] is None:
                raise ValueError(f"score={name!r} needs statistics of ID training images: call "
                                 f"detector.fit(id_train_images) first.")
            return name
        if name not in SCORES:
            raise ValueError(f"`score` must be one of {', '.join((*SCORES, *needs))}, got "
                             f"score={name!r}.")
        return name


@dataclass
class Fusion:
    """The fused score: the sum over ``scores`` of (score - mean) / std, with each score's
    (mean, std) on held-out ID training images in ``stats`` (S, 2), std > 0."""

    scores: tuple[str, ...]
    stats: Tensor  # S, 2

    def check(self, detector: Detector) -> None:
        """Raise ``ValueError`` unless every part is a score ``detector`` can compute (not
        ``"fused"`` itself), listed once, with finite statistics and std > 0."""
        names = self.scores
        if (not names or not all(isinstance(n, str) for n in names)
                or len(set(names)) != len(names) or FUSED in names):
            raise ValueError(f"the fused score's parts must be distinct score names other than "
                             f"'fused', got {list(names)!r}.")
        for name in names:
            try:
                detector.check_score(name)
            except ValueError as err:
                raise ValueError(f"the fused score's part {name!r} cannot be computed: "
                                 f"{err}") from None
        stats = self.stats
        if (not isinstance(stats, Tensor) or not stats.is_floating_point()
                or tuple(stats.shape) != (len(names), 2) or not torch.isfinite(stats).all()
                or not (stats[:, 1] > 0).all()):
            raise ValueError(f"the fused score's statistics must be a finite float tensor "
                             f"({len(names)}, 2) of (mean, std > 0), got "
                             f"{getattr(stats, 'shape', type(stats).__name__)}.")


# ----------------------------------------------------------------------------- helpers

Normalization = tuple[Sequence[float], Sequence[float]]  # (mean, std) per input channel


def _check_normalization(value: Normalization | None) -> tuple[Tensor, Tensor] | None:
    """``(mean, std)`` as two float64 tensors shaped (1, C, 1, 1), checked; None stays None."""
    if value is None:
        return None
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"`input_normalization` must be a pair (mean, std), got "
                        f"input_normalization={value!r}.")
    mean, std = (torch.as_tensor(v, dtype=torch.float64).reshape(1, -1, 1, 1) for v in value)
    ok = (mean.numel() == std.numel() >= 1 and bool(torch.isfinite(mean).all())
          and bool(torch.isfinite(std).all()) and bool((std > 0).all()))
    if not ok:
        raise ValueError(f"`input_normalization` must be (mean, std) with as many finite "
                         f"entries each and std > 0, got input_normalization={value!r}.")
    return mean, std


def _denormalize(x: Tensor, normalization: tuple[Tensor, Tensor]) -> Tensor:
    """Undo ``Normalize(mean, std)``: (N, C, H, W) -> ``x * std + mean`` in [0, 1]."""
    mean, std = normalization
    if mean.shape[1] not in (1, x.shape[1]):
        raise ValueError(f"`input_normalization` must have one entry per input channel (or "
                         f"one), got {mean.shape[1]} entries for images of "
                         f"shape={tuple(x.shape)} (as N, C, H, W).")
    pixels = x.to(torch.float64) * std + mean  # N, C, H, W
    lo, hi = pixels.min().item(), pixels.max().item()
    tol = DENORMALIZE_TOLERANCE
    if not (-tol <= lo and hi <= 1.0 + tol):  # also catches NaN
        raise ValueError(f"de-normalised images must lie in [0, 1] (is input_normalization the "
                         f"(mean, std) they were normalised with?), got min={lo:.4g}, "
                         f"max={hi:.4g} for mean={mean.flatten().tolist()}, "
                         f"std={std.flatten().tolist()}.")
    return pixels.clamp_(0.0, 1.0).to(torch.float32)


def held_out_size(count: int) -> int:
    """How many of ``count`` >= 4 images :meth:`Detector.fit` holds out of the bank: a fifth,
    at least 2, at most ``HELD_OUT_SIZE``."""
    return min(HELD_OUT_SIZE, max(2, count // 5))


def _optional_group(payload: dict[str, Any], types: dict[str, type], what: str) -> bool:
    """Whether ``payload`` holds the optional keys ``types`` (all or none, each of its type);
    ``ValueError`` naming the key when only some are there or one is ill-typed."""
    if not any(key in payload for key in types):
        return False
    for key, kind in types.items():
        value = payload.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"key {key!r} must be {kind.__name__} ({what}: keys "
                             f"{', '.join(map(repr, types))} come together), got "
                             f"type={type(value).__name__}.")
    return True


def _conv_widths(classifier: nn.Module) -> list[int]:
    """Output channels of each convolution, in the order the layer statistics list them."""
    return [m.out_channels for m in classifier.modules() if isinstance(m, nn.Conv2d)]


def _feature_dim(classifier: nn.Module) -> int:
    """F, the width of a Classifier's (or a PlainClassifier's inner one's) features."""
    return getattr(classifier, "inner", classifier).feature_dim


def _as_tensor(images: Tensor | np.ndarray) -> Tensor:
    if isinstance(images, np.ndarray):
        if images.dtype == object or not (np.issubdtype(images.dtype, np.number)
                                          or images.dtype == np.bool_):
            raise TypeError(f"images must be a numeric array, got dtype={images.dtype}.")
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor or numpy.ndarray, got "
                        f"type={type(images).__name__}.")
    if images.dtype == torch.bool or images.is_complex():
        raise TypeError(f"images must be uint8 in [0, 255] or float in [0, 1], got "
                        f"dtype={images.dtype}.")
    return images.detach().cpu()


def _channels_first(x: Tensor, layout: str) -> Tensor:
    """4-D (N, C, H, W) or (N, H, W, C) -> (N, C, H, W)."""
    ok = (1, 3, 4)
    if layout == "auto":
        first, last = x.shape[1] in ok, x.shape[3] in ok
        if first and last:
            raise ValueError(f"cannot tell the channel axis of shape={tuple(x.shape)}: pass "
                             f"layout='NCHW' or layout='NHWC'.")
        layout = "NCHW" if first else "NHWC"
    if layout == "NHWC":
        x = x.permute(0, 3, 1, 2)  # N, C, H, W
    if x.shape[1] not in ok:
        raise ValueError(f"images must have 1, 3 or 4 channels, got shape={tuple(x.shape)} "
                         f"(read as {layout}).")
    return x


def _to_uint8(x: Tensor) -> Tensor:
    """Integer images in [0, 255] or float images in [0, 1] -> uint8, checking the range."""
    if x.dtype == torch.uint8:
        return x
    if x.is_floating_point():
        lo, hi = x.min().item(), x.max().item()
        if not (0.0 <= lo and hi <= 1.0):  # also catches NaN
            raise ValueError(f"float images must have values in [0, 1] (divide uint8 pixels by "
                             f"255, or pass them as uint8), got min={lo}, max={hi} "
                             f"(dtype={x.dtype}).")
        return (x.float() * 255.0).round_().to(torch.uint8)
    values = x.numpy()  # any integer dtype: torch has no min/max for uint16, uint32, uint64
    lo, hi = values.min(), values.max()
    if not (0 <= lo and hi <= 255):
        raise ValueError(f"integer images must have values in [0, 255], got min={lo}, max={hi} "
                         f"(dtype={x.dtype}).")
    return torch.from_numpy(values.astype(np.uint8))
