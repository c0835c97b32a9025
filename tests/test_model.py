"""The network: size, heads and output shapes."""

from __future__ import annotations

import pytest
import torch

from modnet_matting.model import MatteOnly, MODNet


@pytest.fixture(scope="module")
def net() -> MODNet:
    torch.manual_seed(0)
    return MODNet()


def test_parameter_count(net: MODNet) -> None:
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == 6_487_075


@pytest.mark.parametrize(("height", "width"), [(64, 96), (96, 64)])
def test_training_forward_gives_three_heads(net: MODNet, height: int, width: int) -> None:
    net.train()
    semantic, detail, matte = net(torch.rand(2, 3, height, width) * 2 - 1)
    assert semantic.shape == (2, 1, height // 16, width // 16)
    assert detail.shape == matte.shape == (2, 1, height, width)
    for head in (semantic, detail, matte):
        assert 0 <= head.min() and head.max() <= 1


def test_eval_forward_is_the_matte_only_path(net: MODNet) -> None:
    net.eval()
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        matte = net(x)
        assert torch.equal(matte, net.forward_matte(x))
        assert torch.equal(MatteOnly(net)(x), matte)
        assert torch.allclose(net.forward_train(x)[2], matte)
