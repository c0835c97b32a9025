"""Checkpoints: the authors' format, our safetensors format, and readable errors."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest
import torch

from modnet_matting import weights
from modnet_matting.model import MODNet
from modnet_matting.weights import CheckpointError, Preprocess, WeightsConfig, WeightsNotFoundError

MANIFEST = Path(__file__).parent / "data" / "official_state_dict.tsv"


def read_manifest() -> dict[str, tuple[int, ...]]:
    """Keys and shapes of the authors' released checkpoints (copied from the spec)."""
    shapes = {}
    for line in MANIFEST.read_text().splitlines():
        key, shape = line.split("\t")
        shapes[key] = tuple(ast.literal_eval(shape))
    return shapes


def authors_format(model: MODNet) -> dict[str, torch.Tensor]:
    """A state dict laid out as the authors saved theirs: DataParallel prefix, backbone twice."""
    state = {}
    for key, value in model.state_dict().items():
        state["module." + key] = value.clone()
        if key.startswith("backbone."):
            state["module.lr_branch." + key] = value.clone()
    return state


@pytest.fixture(scope="module")
def model() -> MODNet:
    torch.manual_seed(3)
    net = MODNet()
    for module in net.modules():  # non-trivial BatchNorm statistics, so loading them matters
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return net.eval()


@pytest.fixture(scope="module")
def authors_ckpt(model: MODNet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "authors.ckpt"
    torch.save(authors_format(model), path)
    return path


def test_keys_and_shapes_match_the_released_checkpoints(model: MODNet) -> None:
    ours = {key: tuple(value.shape) for key, value in authors_format(model).items()}
    assert ours == read_manifest()


def test_authors_checkpoint_loads_strictly_with_identical_output(model: MODNet, authors_ckpt: Path) -> None:
    loaded, config = weights.load_weights(authors_ckpt)
    x = torch.rand(1, 3, 64, 96) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded.forward_matte(x), model.forward_matte(x))
    assert config.preprocess == Preprocess()


def test_missing_num_batches_tracked_is_tolerated(model: MODNet, tmp_path: Path) -> None:
    state = {k: v for k, v in authors_format(model).items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "no_nbt.ckpt")
    weights.load_weights(tmp_path / "no_nbt.ckpt")


def test_wrong_shape_is_rejected_naming_the_key(model: MODNet, tmp_path: Path) -> None:
    state = authors_format(model)
    state["module.f_branch.conv_f2x.layers.0.weight"] = torch.zeros(32, 64, 5, 5)
    torch.save(state, tmp_path / "wrong.ckpt")
    expected = r"f_branch\.conv_f2x\.layers\.0\.weight \(32, 64, 5, 5\) != \(32, 64, 3, 3\)"
    with pytest.raises(CheckpointError, match=expected):
        weights.load_weights(tmp_path / "wrong.ckpt")


def test_missing_and_unexpected_keys_are_named(model: MODNet, tmp_path: Path) -> None:
    state = authors_format(model)
    state["module.extra.weight"] = state.pop("module.hr_branch.conv_hr.1.layers.0.bias")
    torch.save(state, tmp_path / "keys.ckpt")
    with pytest.raises(CheckpointError) as info:
        weights.load_weights(tmp_path / "keys.ckpt")
    assert "hr_branch.conv_hr.1.layers.0.bias" in str(info.value) and "extra.weight" in str(info.value)


def test_differing_backbone_copies_are_rejected(model: MODNet, tmp_path: Path) -> None:
    state = authors_format(model)
    state["module.lr_branch.backbone.model.features.0.0.weight"] += 1
    torch.save(state, tmp_path / "copies.ckpt")
    with pytest.raises(CheckpointError, match="backbone copies differ"):
        weights.load_weights(tmp_path / "copies.ckpt")


def test_truncated_files_are_rejected(authors_ckpt: Path, random_weights: Path, tmp_path: Path) -> None:
    for source in (authors_ckpt, random_weights):
        cut = tmp_path / f"cut{source.suffix}"
        data = source.read_bytes()
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(CheckpointError, match=str(cut.name)):
            weights.load_weights(cut)
    (tmp_path / "empty.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        weights.load_weights(tmp_path / "empty.ckpt")


def test_safetensors_round_trip_keeps_weights_and_config(model: MODNet, tmp_path: Path) -> None:
    config = WeightsConfig(preprocess=Preprocess(reference_size=384), card={"data": "test"})
    path = weights.save_weights(model, tmp_path / "w.safetensors", config, dtype=torch.float32)
    loaded, loaded_config = weights.load_weights(path)
    assert loaded_config == config
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_missing_default_weights_say_how_to_get_some(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(weights, "_packaged_path", lambda name: tmp_path / name)
    with pytest.raises(WeightsNotFoundError) as info:
        weights.load_weights(None)
    message = str(info.value)
    assert "\n" not in message and "--weights" in message and "modnet weights fetch" in message


def test_unknown_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match="not found"):
        weights.load_weights(tmp_path / "nothing.ckpt")


@pytest.mark.parametrize("name", [None, "modnet-people-video"])
def test_bundled_weights_find_the_person_in_the_demo_photo(name: str | None) -> None:
    """`modnet matte photo.jpg` must work offline: the default weights (and the video variant) ship in the package."""
    from importlib import resources

    from modnet_matting.inference import load_model

    predictor = load_model(name, device="cpu", backend="torch")
    assert predictor.config.card["samples_seen"] > 0 and "validation" in predictor.config.card
    photo = resources.files("modnet_matting") / "assets" / "grace_hopper.jpg"
    alpha = predictor.predict(str(photo))
    height, width = alpha.shape
    assert (height, width) == (600, 512)
    face = alpha[int(height * 0.3):int(height * 0.5), int(width * 0.35):int(width * 0.65)]
    sky = alpha[: int(height * 0.25), int(width * 0.8):]
    assert face.mean() > 0.9 and sky.mean() < 0.2


def test_files_that_are_not_checkpoints_give_one_short_line(tmp_path: Path) -> None:
    from importlib import resources

    photo = resources.files("modnet_matting") / "assets" / "grace_hopper.jpg"
    with pytest.raises(weights.CheckpointError) as info:
        weights.read_checkpoint(str(photo))
    assert "not a readable PyTorch checkpoint" in str(info.value) and "\n" not in str(info.value)
    assert len(str(info.value)) < 300
    script = torch.jit.script(torch.nn.Linear(2, 2))
    script.save(str(tmp_path / "m.pt"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PyTorch's "looks like a TorchScript archive" warning came first
        with pytest.raises(weights.CheckpointError, match="TorchScript archive is an export"):
            weights.read_checkpoint(tmp_path / "m.pt")


def test_bad_weights_paths_say_what_is_wrong_in_one_line(tmp_path: Path, capsys) -> None:
    """A fake .xml printed TensorFlow's absl logs and a multi-line OpenVINO exception; a folder said 'not found'."""
    from modnet_matting.cli.main import main
    from modnet_matting.inference import load_model

    (tmp_path / "fake.xml").write_text("this is not a network")
    (tmp_path / "nobin.xml").write_text('<?xml version="1.0"?><net name="m" version="11"></net>')
    (tmp_path / "folder").mkdir()
    cases = [("fake.xml", "is not an OpenVINO IR"), ("nobin.xml", "nobin.bin is missing"), ("folder", "is a folder")]
    for name, message in cases:
        with pytest.raises(weights.CheckpointError, match=message):
            load_model(tmp_path / name)
        photo = tmp_path / "p.png"
        photo.write_bytes(b"")
        assert main(["matte", str(photo), "--weights", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_unknown_devices_are_refused_in_one_line() -> None:
    from modnet_matting.inference import pick_device

    for bad in ("tpu", "xla", "gpu0"):
        with pytest.raises(ValueError, match=r"(unknown|unsupported) device .*use auto, cpu, cuda"):
            pick_device(bad)
    assert pick_device("cpu").type == "cpu"


def test_bundled_weights_are_described_by_their_own_card() -> None:
    """`modnet weights list` reads a bundled file's card: the description cannot drift from the file."""
    from modnet_matting.weights import REGISTRY, _packaged_path, describe, read_config

    bundled = [n for n, e in REGISTRY.items() if e.package_file and _packaged_path(e.package_file).exists()]
    if not bundled:
        pytest.skip("this build bundles no weights")
    for name in bundled:
        card = read_config(_packaged_path(REGISTRY[name].package_file)).card
        assert card.get("description") and describe(name) == card["description"]


def test_read_config_takes_the_card_from_the_header_alone(tmp_path) -> None:
    from modnet_matting.model import MODNet
    from modnet_matting.weights import WeightsConfig, read_config, save_weights

    path = save_weights(MODNet(), tmp_path / "w.safetensors", WeightsConfig(card={"description": "probe"}))
    assert read_config(path).card == {"description": "probe"}
