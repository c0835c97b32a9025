"""Named weights, their configs and model cards, and checkpoint input/output.

Two file formats are read:

* the authors' ``.ckpt`` files: a pickled state dict saved from ``nn.DataParallel``
  (``module.`` prefixes, the backbone stored twice). They are opened with
  ``torch.load(weights_only=True)``, which refuses to run pickled code;
* our own ``.safetensors`` files, whose metadata holds a JSON config
  (architecture, preprocessing and model card).

Nothing here downloads on its own: ``fetch`` is only called when a user asks for
a registry entry that lives behind a URL, and the file is checked by SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where tensors are handled: `modnet weights list` needs none
    import torch
    from torch import nn

ARCHITECTURE = "modnet-v2-se"
#: Exported models, by suffix: they run as they are, on the runtime that reads them (never as PyTorch weights).
EXPORT_KINDS = {".onnx": "onnx", ".xml": "ir", ".tflite": "tflite"}
_DUPLICATE_BACKBONE = "lr_branch.backbone."


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or does not fit the network."""


class WeightsNotFoundError(CheckpointError):
    """The requested weights are not on this machine (one-line explanation)."""


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes network input; stored with the weights it belongs to.

    ``resize_mode`` "reference" is the authors' image rule (keep sizes whose short
    side is at most and long side at least ``reference_size``, otherwise scale the
    short side to it); "short_side" always scales the short side, as their video
    demos do. Sides are then floored to a multiple of ``size_divisor``.
    """

    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    reference_size: int = 512
    size_divisor: int = 32
    resize_mode: str = "reference"
    interpolation: str = "area"


@dataclass(frozen=True)
class WeightsConfig:
    """Everything needed to use a weights file: network, preprocessing, model card."""

    architecture: str = ARCHITECTURE
    preprocess: Preprocess = field(default_factory=Preprocess)
    card: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> WeightsConfig:
        data = json.loads(text)
        pre = data.get("preprocess", {})
        for key in ("mean", "std"):
            if key in pre:
                pre[key] = tuple(pre[key])
        return cls(
            architecture=data.get("architecture", ARCHITECTURE),
            preprocess=Preprocess(**pre),
            card=data.get("card", {}),
        )


@dataclass(frozen=True)
class WeightsEntry:
    """One named set of weights: a file shipped in the package or a URL + SHA-256.

    A bundled file describes itself (its card's ``description``, see ``describe``): the registry
    states only what is not in a file on this machine.
    """

    name: str
    description: str
    config: WeightsConfig
    package_file: str | None = None
    int8_file: str | None = None  # a shipped int8 OpenVINO IR calibrated on ``package_file``
    url: str | None = None
    sha256: str | None = None
    filename: str | None = None


_AUTHORS_CARD = {
    "source": "Ke et al., MODNet (AAAI 2022), released checkpoint",
    "licence": "CC BY-NC-SA 4.0 (the authors' terms; non-commercial)",
}
_MIRROR = "https://github.com/clibdev/MODNet/releases/latest/download/"

REGISTRY: dict[str, WeightsEntry] = {
    "modnet-people": WeightsEntry(
        name="modnet-people",
        description="Our MODNet, bundled (its card describes it).",
        config=WeightsConfig(card={"source": "this project", "licence": "see docs/model_card.md"}),
        package_file="modnet_people.safetensors",
        int8_file="modnet_people.int8.xml",
    ),
    "modnet-people-video": WeightsEntry(
        name="modnet-people-video",
        description="Our MODNet adapted to video frames with SOC, bundled (its card describes it).",
        config=WeightsConfig(card={"source": "this project", "licence": "see docs/model_card.md"}),
        package_file="modnet_people_video.safetensors",
    ),
    "modnet-photographic": WeightsEntry(
        name="modnet-photographic",
        description="The authors' photographic portrait checkpoint (download on request).",
        config=WeightsConfig(card=_AUTHORS_CARD),
        url=_MIRROR + "modnet_photographic_portrait_matting.ckpt",
        filename="modnet_photographic_portrait_matting.ckpt",
    ),
    "modnet-webcam": WeightsEntry(
        name="modnet-webcam",
        description="The authors' webcam checkpoint, adapted with SOC (download on request).",
        config=WeightsConfig(
            preprocess=Preprocess(resize_mode="short_side"), card=_AUTHORS_CARD
        ),
        url=_MIRROR + "modnet_webcam_portrait_matting.ckpt",
        filename="modnet_webcam_portrait_matting.ckpt",
    ),
}
DEFAULT_WEIGHTS = "modnet-people"


def cache_dir() -> Path:
    """Where downloaded weights live (``$MODNET_HOME`` or ``~/.cache/modnet_matting``)."""
    return Path(os.environ.get("MODNET_HOME", Path.home() / ".cache" / "modnet_matting"))


def _packaged_path(filename: str) -> Path:
    return Path(str(resources.files("modnet_matting") / "weights_data" / filename))


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(name: str, sha256: str | None = None) -> Path:
    """Download a registry entry's file on explicit request and verify its SHA-256.

    The registry pins a checksum where one is known; otherwise the caller must
    give one (``--sha256``), so no unverified file is ever used.
    """
    entry = _entry(name)
    if entry.url is None:
        raise CheckpointError(f"weights '{name}' ship with the package; nothing to download")
    expected = (sha256 or entry.sha256 or "").strip().lower()
    if expected and (len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected)):
        raise CheckpointError(f"--sha256 {expected[:80]!r} is not a SHA-256: 64 hexadecimal digits, as sha256sum "
                              "prints them (nothing was downloaded)")
    if not expected:
        raise CheckpointError(
            f"no checksum is recorded for '{name}' (the authors publish none): pass with --sha256 the SHA-256 "
            f"of a copy you trust (see 'Weights' in the README), or use --weights FILE with a file you already have"
        )
    return download_verified(entry.url, expected, cache_dir() / (entry.filename or f"{name}.ckpt"), f"'{name}'")


#: Largest file ``download_verified`` accepts (the biggest thing fetched is a 35 MB runtime package).
MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024


def download_verified(url: str, sha256: str, target: Path, what: str) -> Path:
    """``target`` if it already has the SHA-256, else the file at ``url``, verified, written atomically.

    Read in blocks up to ``MAX_DOWNLOAD_BYTES``, so a wrong URL cannot fill memory;
    nothing is written unless the checksum matches.
    """
    if target.exists() and sha256_of(target) == sha256:
        return target
    digest, blocks, size = hashlib.sha256(), [], 0
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - explicit URL
        for block in iter(lambda: response.read(1 << 20), b""):
            size += len(block)
            if size > MAX_DOWNLOAD_BYTES:
                raise CheckpointError(f"{url} is larger than {MAX_DOWNLOAD_BYTES >> 20} MB; not {what}")
            digest.update(block)
            blocks.append(block)
    if digest.hexdigest() != sha256:
        raise CheckpointError(f"checksum mismatch for {what}: expected {sha256}, got {digest.hexdigest()}")
    from .io import atomic_write

    return atomic_write(target, b"".join(blocks))


def _entry(name: str) -> WeightsEntry:
    if name not in REGISTRY:
        raise WeightsNotFoundError(f"unknown weights '{name}'; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def packaged_int8(name_or_path: str | os.PathLike[str] | None) -> Path | None:
    """The int8 OpenVINO IR shipped with registry weights, where there is one (``auto`` checks that it was
    calibrated on the very file before using it)."""
    entry = REGISTRY.get(str(DEFAULT_WEIGHTS if name_or_path is None else name_or_path))
    if entry is None or entry.int8_file is None:
        return None
    path = _packaged_path(entry.int8_file)
    return path if path.is_file() and path.with_suffix(".bin").is_file() else None


def export_kind(name_or_path: str | os.PathLike[str] | None) -> str | None:
    """"onnx", "ir" or "tflite" for an exported model's path; None for weights (a file or a registry name)."""
    return EXPORT_KINDS.get(Path(str(name_or_path)).suffix.lower()) if name_or_path is not None else None


def read_config(path: str | Path) -> WeightsConfig | None:
    """The config in one of our ``.safetensors`` files, from its header alone (no tensor is read, no torch)."""
    import struct

    with open(path, "rb") as handle:
        size = struct.unpack("<Q", handle.read(8))[0]
        if size > 100_000_000:
            raise CheckpointError(f"{path} is not a valid safetensors file (header of {size} bytes)")
        header = json.loads(handle.read(size))
    text = header.get("__metadata__", {}).get("config")
    return WeightsConfig.from_json(text) if text else None


def describe(name: str) -> str:
    """One line about named weights: a bundled file's own card says it; a download, the registry."""
    entry = _entry(name)
    if entry.package_file is not None and _packaged_path(entry.package_file).exists():
        config = read_config(_packaged_path(entry.package_file))
        if config is not None and config.card.get("description"):
            return str(config.card["description"])
    return entry.description


def resolve(name_or_path: str | os.PathLike[str] | None = None) -> tuple[Path, WeightsConfig | None]:
    """Map a registry name or a file path to a local file and the registry's config."""
    if name_or_path is None:
        name_or_path = DEFAULT_WEIGHTS
    text = str(name_or_path)
    if text in REGISTRY:
        entry = REGISTRY[text]
        if entry.package_file is not None:
            path = _packaged_path(entry.package_file)
            if not path.exists():
                raise WeightsNotFoundError(
                    f"weights '{text}' are not bundled in this build; pass --weights FILE "
                    "(an authors' .ckpt or a .safetensors) or run `modnet weights fetch NAME`"
                )
            return path, entry.config
        path = cache_dir() / (entry.filename or f"{text}.ckpt")
        if not path.exists():
            raise WeightsNotFoundError(
                f"weights '{text}' are not downloaded; run `modnet weights fetch {text} --sha256 HEX`"
            )
        return path, entry.config
    path = Path(text).expanduser()
    if path.is_dir():
        raise CheckpointError(f"--weights {path} is a folder; give a weights file (.safetensors, .ckpt, .onnx, "
                              ".xml) or a name from modnet weights list")
    if not path.is_file():
        raise WeightsNotFoundError(f"weights file not found: {path}")
    return path, None


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], WeightsConfig | None]:
    """Read a state dict (and our config when present) without executing code."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror}") from None
    if len(head) == 0:
        raise CheckpointError(f"{path} is empty")
    if path.suffix == ".safetensors" or head[8:9] == b"{":
        return _read_safetensors(path)
    if _is_torchscript(path):  # torch.load would hand it to torch.jit.load (with a warning) and build its program
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: a TorchScript archive is an export, "
                              "not a checkpoint: pass the .safetensors or .ckpt it came from")
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle and zip errors have many types; their texts run to many lines
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        if "Weights only load failed" in str(exc):
            first = "not a torch.save file of tensors (pickled code in a checkpoint is never run)"
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: {first}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return obj, None


def _is_torchscript(path: Path) -> bool:
    """A zip with a ``code/`` folder (``<archive>/code/...``): TorchScript's program, which checkpoints never have."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.split("/")[1:2] == ["code"] for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], WeightsConfig | None]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a valid safetensors file ({exc})") from None
    config = WeightsConfig.from_json(metadata["config"]) if "config" in metadata else None
    return tensors, config


def normalise_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Turn an authors'-format state dict into ours.

    Strips ``module.``, checks that the second backbone copy equals the first and
    drops it (our network stores the backbone once).
    """
    import torch

    state = {key.removeprefix("module."): value for key, value in state.items()}
    copies = {key: value for key, value in state.items() if key.startswith(_DUPLICATE_BACKBONE)}
    for key, value in copies.items():
        original = "backbone." + key[len(_DUPLICATE_BACKBONE):]
        if original not in state:
            state[original] = value
        elif state[original].shape != value.shape or not torch.equal(state[original], value):
            raise CheckpointError(f"the two backbone copies differ at '{original}'")
        del state[key]
    return state


def load_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load strictly, tolerating only missing BatchNorm ``num_batches_tracked``.

    Raises ``CheckpointError`` naming the first mismatches in plain words.
    """
    state = normalise_state_dict(state)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s) e.g. {', '.join(missing[:3])}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s) e.g. {', '.join(unexpected[:3])}")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatch(es) e.g. {'; '.join(wrong[:3])}")
    if problems:
        raise CheckpointError("checkpoint does not fit MODNet: " + "; ".join(problems))
    merged = {k: state.get(k, v) for k, v in expected.items()}
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in merged.items()}, strict=True)


def save_weights(
    model: nn.Module,
    path: str | Path,
    config: WeightsConfig | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Save ``model`` as safetensors with its config in the metadata (atomic write).

    Floating tensors are stored as ``dtype`` (None: fp16, half the size, and a
    matte difference far below one 8-bit grey level).
    """
    import torch
    from safetensors.torch import save

    dtype = dtype or torch.float16
    config = config or WeightsConfig()
    tensors = {
        key: (value.detach().to("cpu", dtype) if value.is_floating_point() else value.detach().cpu()).contiguous()
        for key, value in model.state_dict().items()
    }
    data = save(tensors, metadata={"config": config.to_json(), "format": "pt"})
    from .io import atomic_write

    atomic_write(path, data)
    return Path(path)


def load_weights(
    name_or_path: str | os.PathLike[str] | None = None,
) -> tuple[nn.Module, WeightsConfig]:
    """Build a MODNet on the CPU in eval mode with the named or given weights."""
    from .model import MODNet

    path, registry_config = resolve(name_or_path)
    state, file_config = read_checkpoint(path)
    config = file_config or registry_config or WeightsConfig()
    if config.architecture != ARCHITECTURE:
        raise CheckpointError(f"{path}: architecture '{config.architecture}' is not '{ARCHITECTURE}'")
    model = MODNet()
    try:
        load_state_dict(model, state)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return model.eval(), config


def with_card(config: WeightsConfig, **card: Any) -> WeightsConfig:
    """A copy of ``config`` whose model card has ``card`` merged in."""
    return replace(config, card={**config.card, **card})
