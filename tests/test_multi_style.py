"""Many styles in one TransformerNet (conditional instance norm, issue 14 item 2): the
network, its checkpoints and the ``style:`` option of ``fast_style``."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline.job.build import prepare
from pipeline.machine.context import RunContext
from pipeline.errors import JobError, WeightsError
from pipeline.models.checkpoints import inspect_checkpoint
from pipeline.models.transformer_net import ConditionalInstanceNorm2d, TransformerNet
from pipeline.stages import get_stage
from tests.conftest import lively_transformer_net, write_job

CPU = RunContext(device=torch.device("cpu"), precision="fp32", batch_size=None)
STYLES = 3


def _multi(seed: int = 0) -> TransformerNet:
    """A lively net with three different (scale, shift) sets in every norm."""
    base = lively_transformer_net(seed)
    net = TransformerNet(STYLES).eval()
    state = {}
    generator = torch.Generator().manual_seed(seed)
    for key, value in base.state_dict().items():
        module = net.get_submodule(key.rpartition(".")[0])
        if isinstance(module, ConditionalInstanceNorm2d):  # each style its own variation
            shift = torch.randn(STYLES, *value.shape, generator=generator) * 0.3
            state[key] = value[None] + shift * (value.abs().mean() + 0.1)
        else:
            state[key] = value
    net.load_state_dict(state)
    return net


def _single_of(net: TransformerNet, style: int) -> TransformerNet:
    single = TransformerNet().eval()
    single.load_state_dict({k: v[style] if v.ndim == 2 and k.split(".")[-2].startswith("in") else v
                            for k, v in net.state_dict().items()})
    return single


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    torch.manual_seed(3)
    return torch.rand(2, 3, 32, 40) * 255


def test_each_style_equals_the_single_style_net_with_its_weights(x) -> None:
    net = _multi()
    with torch.no_grad():
        outs = []
        for style in range(STYLES):
            net.set_style(style)
            outs.append(net(x))
            assert torch.equal(outs[-1], _single_of(net, style)(x))
    assert not torch.equal(outs[0], outs[1])  # the styles differ


def test_a_blend_at_one_to_zero_is_the_first_style_and_halves_interpolate(x) -> None:
    net = _multi()
    with torch.no_grad():
        net.set_style(0)
        first = net(x)
        net.set_style({0: 1.0, 2: 0.0})
        assert torch.equal(net(x), first)
        net.set_style({0: 1, 2: 1})  # scaled to sum 1: an even blend of the parameters
        halves = net(x)
    even = TransformerNet().eval()
    even.load_state_dict({k: (v[0] + v[2]) / 2 if v.ndim == 2 and k.split(".")[-2].startswith("in")
                          else v for k, v in net.state_dict().items()})
    with torch.no_grad():
        torch.testing.assert_close(halves, even(x), atol=1e-3, rtol=1e-4)
    with pytest.raises(ValueError, match="style 3 is not one of this network's 3"):
        net.set_style(3)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("multi") / "four_styles.safetensors"
    save_file({k: v.contiguous() for k, v in _multi(1).state_dict().items()}, str(path))
    return path


def test_the_checkpoint_says_how_many_styles_and_the_stage_paints_each(saved: Path, x) -> None:
    arch, _ = inspect_checkpoint(saved)
    assert arch.family == "fast_style" and arch.styles == STYLES and "3 styles" in arch.describe()
    net = _multi(1)
    cls = get_stage("fast_style")
    for style in (0, 2, {0: 0.25, 1: 0.75}):
        stage = cls(cls.Params(weights=saved, style=style, runtime="torch"), CPU)
        net.set_style(style)
        with torch.no_grad():
            expected = net(x).clamp(0, 255)
        assert torch.equal(stage(x), expected)
        assert stage.fingerprint()["style"] == style
        # the same style exported to ONNX Runtime (the CPU's default): within a thousandth
        exported = cls(cls.Params(weights=saved, style=style), CPU)
        assert exported.onnx is not None and exported.fingerprint()["runs_in"] == "onnxruntime"
        torch.testing.assert_close(exported(x), expected, atol=1e-3, rtol=0)
    assert "style" not in cls(cls.Params(weights=saved), CPU).fingerprint()  # style 0, as before
    with pytest.raises(WeightsError, match="style 7 is not one of"):
        cls(cls.Params(weights=saved, style=7), CPU)


def test_style_in_a_job_file(tmp_path: Path, saved: Path) -> None:
    (tmp_path / "in").mkdir()
    from tests.conftest import make_photos
    make_photos(tmp_path / "in", 1)
    job = write_job(tmp_path, f"""
        sources: [{{images: in/}}]
        output: out
        stages:
          - decode
          - fast_style: {{weights: {saved}, style: {{0: 0.5, 2: 0.5}}}}
          - encode
        """)
    stage = prepare(job).stages[1]
    assert stage.params.style == {0: 0.5, 2: 0.5}
    bad = write_job(tmp_path, f"""
        sources: [{{images: in/}}]
        output: out
        stages: [decode, {{fast_style: {{weights: {saved}, style: {{first: 1}}}}}}, encode]
        """, name="bad.yaml")
    with pytest.raises(JobError, match="key 'first' is not valid; expected an integer"):
        prepare(bad)


def test_a_single_style_net_takes_style_zero_only(tmp_path: Path, x) -> None:
    path = tmp_path / "one.pth"
    torch.save(lively_transformer_net().state_dict(), path)
    cls = get_stage("fast_style")
    plain = cls(cls.Params(weights=path), CPU)
    assert torch.equal(cls(cls.Params(weights=path, style=0), CPU)(x), plain(x))
    with pytest.raises(WeightsError, match="style 1 is not one of this network's 1"):
        cls(cls.Params(weights=path, style=1), CPU)
