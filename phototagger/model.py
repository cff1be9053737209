"""The model file: a TorchScript module that carries its own metadata.

This is the only code that knows the format; ``training/export.py`` writes files through
:func:`save_model_file` and everything else reads them through :class:`LandmarkModel`.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import warnings
import zipfile
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from phototagger.decision import Evidence
from phototagger.errors import ConfigError, ModelFormatError
from phototagger.hashing import file_hash
from phototagger.imaging import PreprocessSpec
from phototagger.landmarks import Landmark

if TYPE_CHECKING:
    import torch

META_NAME = "phototagger.json"
FORMAT = "phototagger-model"
#: 2: the network also returns its evidence (reference photos inside the file, see
#: training/gallery.py); 1: logits only, read with no evidence, so nothing it says is written.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
DEVICES = ("auto", "cpu", "cuda")
#: On a CPU the network runs this many images at a time, whatever the batch: the activations
#: of a few images stay in cache. Measured on two cores with EfficientNet-Lite0 at 224 px:
#: about 50 images/s in chunks of 4 against 33 for a whole batch of 32.
CPU_CHUNK = 4
_REQUIRED = ("name", "version", "architecture", "classes", "preprocess")
_EVIDENCE_REQUIRED = ("split", "references", "tag_margin", "suggest_margin")


def select_device(name: str = "auto") -> torch.device:
    """``auto`` takes CUDA when present; asking for CUDA without it is a configuration error."""
    import torch

    if name not in DEVICES:
        raise ConfigError(f"unknown device {name!r}: use auto, cpu or cuda")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but no CUDA device is available")
    return torch.device(name)


def validate_meta(meta: dict) -> None:
    """Raise ModelFormatError unless ``meta`` is complete enough to tag photos with."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFormatError("not a phototagger model (no phototagger metadata)")
    version = meta.get("format_version")
    if version not in READABLE_VERSIONS:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        raise ModelFormatError(
            f"unsupported model format version {version!r}"
            f" (this phototagger reads {' and '.join(map(str, READABLE_VERSIONS))}"
            + ("; upgrade phototagger)" if newer else ")")
        )
    missing = [key for key in _REQUIRED if key not in meta]
    if missing:
        raise ModelFormatError(f"model metadata lacks {', '.join(missing)}")
    if not meta["classes"]:
        raise ModelFormatError("model metadata lists no classes")
    try:
        [Landmark.from_dict(entry) for entry in meta["classes"]]
        PreprocessSpec.from_dict(meta["preprocess"])
    except ConfigError as error:
        raise ModelFormatError(f"bad model metadata: {error}") from None
    temperature = meta.get("temperature", 1.0)
    threshold = meta.get("threshold", 0.5)
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ModelFormatError(f"bad temperature {temperature!r}")
    if not (isinstance(threshold, (int, float)) and 0 <= threshold <= 1):
        raise ModelFormatError(f"bad threshold {threshold!r}")
    if version >= 2:
        evidence = meta.get("evidence")
        lacking = [k for k in _EVIDENCE_REQUIRED if not isinstance(evidence, dict)
                   or not isinstance(evidence.get(k), (int, float))]
        if lacking:
            raise ModelFormatError(f"model metadata lacks evidence {', '.join(lacking)}")


def save_model_file(module: torch.jit.ScriptModule, meta: dict, path: str | Path) -> None:
    """Write a model file: TorchScript plus ``phototagger.json``; the metadata is checked first.

    Atomically, and read back before it replaces anything: evaluation and ``rescript`` may
    write over the very file they read.
    """
    import torch

    from phototagger.tags.atomic import atomic_write

    version = FORMAT_VERSION if "evidence" in meta else 1  # a network still without its gallery
    meta = {**meta, "format": FORMAT, "format_version": version}
    validate_meta(meta)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(module, buffer, _extra_files={META_NAME: json.dumps(meta, indent=1)})

    def verify(written: bytes) -> None:
        try:
            same = _meta_in(io.BytesIO(written)) == meta
        except (zipfile.BadZipFile, ValueError, ModelFormatError):
            same = False
        if not same:
            raise ModelFormatError(f"{path}: the written model file does not read back")

    atomic_write(path, buffer.getvalue(), verify, like=path if path.exists() else None)


def _meta_in(archive_file: str | Path | io.BytesIO) -> dict:
    with zipfile.ZipFile(archive_file) as archive:
        names = [n for n in archive.namelist() if n.endswith(f"/extra/{META_NAME}")]
        if not names:
            raise ModelFormatError("not a phototagger model (no phototagger metadata)")
        return json.loads(archive.read(names[0]))


def network_id(path: str | Path) -> str:
    """What a photo's embedding depends on: the file's weights and buffers, not its metadata.

    A short hash over the TorchScript archive's tensors (``data/*``: weights and buffers, the
    projection and reference photos included), read from the zip's directory (their CRCs)
    without torch. A new version of a
    file that changes only its metadata (names, thresholds, margins) keeps it, so embeddings
    stored in an index stay valid; anything that retrains or rebuilds the network changes it.
    """
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(path) as archive:
            entries = sorted(
                (info.filename.partition("/")[2], info.CRC, info.file_size)
                for info in archive.infolist()
            )
    except (zipfile.BadZipFile, OSError):
        raise ModelFormatError(f"not a TorchScript model file: {path}") from None
    for name, crc, size in entries:
        if name.startswith("data/"):
            digest.update(f"{name}\0{crc}\0{size}\n".encode())
    return digest.hexdigest()[:16]


def read_meta(path: str | Path) -> dict:
    """The metadata of a model file, read from its zip archive without loading torch."""
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"model file not found: {path}")
    try:
        meta = _meta_in(path)
    except ModelFormatError as error:
        raise ModelFormatError(f"{error}: {path}") from None
    except (zipfile.BadZipFile, OSError):
        raise ModelFormatError(f"not a TorchScript model file: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ModelFormatError(f"unreadable phototagger metadata in {path}") from None
    validate_meta(meta)
    return meta


@dataclass
class Scores:
    """What the network says of a batch: probabilities, and with format 2 its evidence."""

    probabilities: torch.Tensor
    #: Before the temperature: what calibration fits.
    logits: torch.Tensor
    #: ``N x classes``: how alike each photo is to each landmark's reference photos.
    similarity: torch.Tensor | None = None
    #: ``N``: how alike each photo is to the ordinary reference photos (of no landmark).
    ordinary: torch.Tensor | None = None
    #: ``N x dimensions``: each photo's embedding, unit length (format 2): what the index
    #: keeps, so that learned landmarks and searches need no second pass over the photo.
    embeddings: torch.Tensor | None = None


class LandmarkModel:
    """A model file: its classes and how to feed it now, its network on first use.

    The network (and torch itself) loads lazily, so a rescan with nothing new to predict
    starts in a fraction of a second.
    """

    def __init__(self, meta: dict, path: Path, device: str | torch.device = "auto"):
        if isinstance(device, str) and device not in DEVICES:
            raise ConfigError(f"unknown device {device!r}: use auto, cpu or cuda")
        self.meta = meta
        self.path = path
        self.device_name = device
        self.classes = [Landmark.from_dict(entry) for entry in meta["classes"]]
        self._by_slug = {landmark.slug: landmark for landmark in self.classes}
        self.preprocess = PreprocessSpec.from_dict(meta["preprocess"])
        self.name = str(meta["name"])
        self.version = str(meta["version"])
        self.architecture = str(meta["architecture"])
        self.temperature = float(meta.get("temperature", 1.0))
        self.threshold = float(meta.get("threshold", 0.5))
        #: The reference photos' settings (format 2); None: a file that brings no evidence.
        self.evidence: dict | None = meta.get("evidence") if meta["format_version"] >= 2 else None
        self.sha256 = file_hash(str(path), "sha256")
        self.model_id = f"{self.name}@{self.version}+{self.sha256[:12]}"
        #: The key of the embeddings this file's network makes (None: it makes none).
        self.network_id = network_id(path) if self.evidence is not None else None
        self._module = None
        self._gallery: _Gallery | None = None
        self._device = None if isinstance(device, str) else device

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "auto") -> LandmarkModel:
        """Read and check the model file's metadata; ModelFormatError if it is not one."""
        path = Path(path)
        return cls(read_meta(path), path, device)

    @property
    def device(self) -> torch.device:
        if self._device is None:
            self._device = select_device(self.device_name)
        return self._device

    @property
    def module(self) -> torch.jit.ScriptModule:
        """The TorchScript network on its device, loaded and checked on first use."""
        if self._module is None:
            self._load(check_batch=1)
        return self._module

    def _load(self, check_batch: int) -> None:
        """Load the network and check it on a batch of zeros of ``check_batch`` images."""
        import torch

        try:
            with warnings.catch_warnings():
                # TorchScript is deprecated upstream but is the format this project ships.
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(str(self.path), map_location=self.device)
        except Exception:
            raise ModelFormatError(f"not a TorchScript model file: {self.path}") from None
        module = module.eval()
        if self.evidence is not None:
            # The evidence is computed here from the network's embedding, not by its
            # ``forward``: the same computation, and the embedding comes along for the index.
            if not hasattr(module, "embedding"):
                raise ModelFormatError(f"model file of format 2 without an embedding: {self.path}")
            self._gallery = _Gallery(module.references.float(), module.members,
                                     module.ordinary.float(),
                                     int(self.evidence.get("neighbours", 3)))
        if self.device.type == "cpu":
            # Freezing inlines the weights and folds batch norm into the convolutions:
            # measured here, EfficientNet-Lite0 went from 25 to 33 images/s on two cores.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                preserved = ["embedding"] if self.evidence is not None else []
                module = torch.jit.freeze(module, preserved_attrs=preserved)
        self._module = module
        self._check_output_width(check_batch)

    def _check_output_width(self, batch: int) -> None:
        import torch

        size = self.preprocess.input_size
        try:
            scores = self.scores(torch.zeros(batch, 3, size, size))
        except torch.cuda.OutOfMemoryError:
            raise ConfigError(
                f"not enough GPU memory for a batch of {batch}: try a smaller --batch-size"
            ) from None
        except Exception as error:
            self._module = None
            raise ModelFormatError(f"model cannot run on its own input size: {error}") from None
        widths = {scores.probabilities.shape[-1]}
        if scores.similarity is not None:
            widths.add(scores.similarity.shape[-1])
        if widths != {len(self.classes)}:
            self._module = None
            raise ModelFormatError(
                f"model outputs {max(widths)} scores but its metadata lists {len(self.classes)}"
                " classes"
            )

    def probabilities(self, batch: torch.Tensor, pad_to: int | None = None) -> torch.Tensor:
        """Calibrated class probabilities for a preprocessed batch, on the CPU."""
        return self.scores(batch, pad_to).probabilities

    def scores(self, batch: torch.Tensor, pad_to: int | None = None) -> Scores:
        """Calibrated class probabilities and the reference photos' evidence, on the CPU.

        ``pad_to``: on CUDA, a shorter batch runs padded to this many rows (their scores are
        dropped). There every new batch shape costs seconds of kernel selection (measured on
        an H200: 2-3 s for a scan's last, shorter batch), so a scan keeps one shape.
        """
        import torch

        module = self.module if self._module is None else self._module
        on_cuda = self.device.type == "cuda"
        count = len(batch)
        batch = batch.to(self.device, non_blocking=on_cuda)
        if on_cuda and pad_to is not None and count < pad_to:
            batch = torch.cat([batch, batch.new_zeros(pad_to - count, *batch.shape[1:])])
        autocast = torch.autocast("cuda", dtype=torch.float16) if on_cuda else nullcontext()
        chunks = [batch] if on_cuda else batch.split(CPU_CHUNK)
        # On CUDA, TorchScript's re-optimisation at the second call cost 0.2 s alone and about
        # 2 s in a busy scan (H200), for no gain: a batch of 32 takes 4 ms either way.
        with torch.inference_mode(), autocast, torch.jit.optimized_execution(not on_cuda):
            if self._gallery is None:  # format 1: the logits alone
                outputs = [(module(chunk),) for chunk in chunks]
            else:
                outputs = [self._gallery.scores(*module.embedding(chunk)) for chunk in chunks]
        parts = [torch.cat(part)[:count].float().cpu() for part in zip(*outputs, strict=True)]
        probabilities = torch.softmax(parts[0] / self.temperature, dim=-1)
        return Scores(probabilities, *parts)

    def warm_up(self, batch_size: int) -> None:
        """Run the network once on a batch of zeros of this size (loading it if need be).

        On CUDA the first call at a batch shape chooses its kernels: 1.7-5.1 s measured on an
        H200. A scan does it while its workers decode the first batches; a network loaded
        here is checked at this size, not at one image, so that costs one shape, not two.
        """
        if self._module is None:
            self._load(check_batch=batch_size)
        else:
            self._check_output_width(batch_size)

    def ranked(self, scores: Scores, k: int = 5) -> list[list[Evidence]]:
        """The top-k guesses of each photo, each with its evidence, best first."""
        k = min(k, len(self.classes))
        values, indices = scores.probabilities.topk(k, dim=-1)
        rows = []
        for row, (ps, idx) in enumerate(zip(values.tolist(), indices.tolist(), strict=True)):
            ordinary = None if scores.ordinary is None else _finite(float(scores.ordinary[row]))
            rows.append([
                Evidence(
                    self.classes[i],
                    _finite(p),
                    None if scores.similarity is None
                    else _finite(float(scores.similarity[row, i])),
                    ordinary,
                )
                for p, i in zip(ps, idx, strict=True)
            ])
        return rows

    def landmark(self, slug: str) -> Landmark | None:
        return self._by_slug.get(slug)


@dataclass(frozen=True)
class _Gallery:
    """A format-2 file's reference photos, taken from its network as it loads."""

    references: torch.Tensor
    members: torch.Tensor
    ordinary: torch.Tensor
    neighbours: int

    def scores(self, logits: torch.Tensor, embedding: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """What the file's ``forward`` returns, and the embedding it came from."""
        from phototagger.evidence import class_similarity, ordinary_similarity

        return (logits,
                class_similarity(embedding, self.references, self.members, self.neighbours),
                ordinary_similarity(embedding, self.ordinary, self.neighbours), embedding)


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0
