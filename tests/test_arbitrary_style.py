"""Any painting as the style (AdaIN, issue 14 item 3): the kernel, the decoder's
checkpoints, the ``arbitrary_style`` stage in real jobs (images and video), and
``train arbitrary`` (loss down on a fixed batch, exact resume, its output runs in the stage)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pipeline.job.build import prepare
from pipeline.machine.context import RunContext
from pipeline.errors import JobError, WeightsError
from pipeline.media.images import read_image, write_image
from pipeline.models.adain import AdaINDecoder, stylize_features
from pipeline.models.checkpoints import inspect_checkpoint, load_adain_decoder
from pipeline.ops.adain import adain, mean_std
from pipeline.stages import get_stage
from pipeline.train.arbitrary import ArbitraryTrainer, ArbitraryTrainOptions, train_arbitrary
from pipeline.train.data import RandomCrops, scan_images
from tests.clips import decode_all, make_clip
from tests.conftest import adain_decoder_file, make_photos, natural_image, run_cli_here, write_job

CPU = RunContext(device=torch.device("cpu"), precision="fp32", batch_size=None)


# --------------------------------------------------------------------------- kernel

def test_adain_moves_each_channel_onto_the_given_statistics() -> None:
    torch.manual_seed(0)
    content = torch.randn(2, 5, 6, 7) * 3 + 1
    before = content.clone()
    mean, std = torch.rand(1, 5, 1, 1) * 4, torch.rand(1, 5, 1, 1) + 0.5
    out = adain(content, mean, std)
    assert torch.equal(content, before)
    got_mean, got_std = mean_std(out)
    torch.testing.assert_close(got_mean, mean.expand(2, -1, -1, -1), atol=1e-4, rtol=0)
    torch.testing.assert_close(got_std, std.expand(2, -1, -1, -1), atol=1e-3, rtol=1e-3)
    assert adain(content.bfloat16(), mean, std).dtype == torch.bfloat16


def test_style_blends_and_alpha_in_feature_space() -> None:
    torch.manual_seed(1)
    f = torch.rand(1, 4, 5, 5) * 3
    a = (torch.rand(1, 4, 1, 1), torch.rand(1, 4, 1, 1) + 0.2)
    b = (torch.rand(1, 4, 1, 1) + 1, torch.rand(1, 4, 1, 1) + 0.2)
    only_a = stylize_features(f, [(*a, 1.0)])
    assert torch.equal(stylize_features(f, [(*a, 1.0), (*b, 0.0)]), only_a)
    half = stylize_features(f, [(*a, 2.0), (*b, 2.0)])  # weights scaled to sum 1
    torch.testing.assert_close(half, (only_a + stylize_features(f, [(*b, 1.0)])) / 2)
    torch.testing.assert_close(stylize_features(f, [(*a, 1.0)], alpha=0.0), f)
    torch.testing.assert_close(stylize_features(f, [(*a, 1.0)], alpha=0.25),
                               0.75 * f + 0.25 * only_a)


# --------------------------------------------------------------------------- checkpoints

def test_decoder_checkpoints_are_recognised_and_foreign_ones_refused(tmp_path: Path) -> None:
    ours = adain_decoder_file(tmp_path / "ours.safetensors")
    arch, _ = inspect_checkpoint(ours, ("adain_decoder",))
    assert arch.family == "adain_decoder"
    assert isinstance(load_adain_decoder(ours), AdaINDecoder)
    # pytorch-AdaIN's decoder.pth: the same keys, but trained on another encoder's features
    upstream = tmp_path / "decoder.pth"
    torch.save(AdaINDecoder().state_dict(), upstream)
    with pytest.raises(WeightsError, match="no record of its encoder.*vgg_normalised"):
        load_adain_decoder(upstream)
    # and its encoder, or a style net, in the decoder's place: named for what they are
    vgg_normalised = tmp_path / "vgg_normalised.pth"
    torch.save({"0.weight": torch.zeros(3, 3, 1, 1), "0.bias": torch.zeros(3),
                "2.weight": torch.zeros(64, 3, 3, 3), "2.bias": torch.zeros(64)}, vgg_normalised)
    with pytest.raises(WeightsError, match="normalised VGG encoder"):
        load_adain_decoder(vgg_normalised)
    with pytest.raises(WeightsError, match="AdaIN arbitrary-style decoder.*arbitrary_style"):
        get_stage("fast_style")(get_stage("fast_style").Params(weights=ours), CPU)


# --------------------------------------------------------------------------- the stage

@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("adain")
    paintings = []
    for i in range(2):
        p = d / f"painting{i}.png"
        write_image(natural_image(48, 40, seed=20 + i)[:, ::-1].copy(), p, "png")
        paintings.append(p)
    return {"decoder": adain_decoder_file(d / "decoder.safetensors"), "a": paintings[0],
            "b": paintings[1], "dir": d}


def _x(n: int = 2) -> torch.Tensor:
    return torch.from_numpy(np.stack([natural_image(24, 36, i) for i in range(n)])).permute(0, 3, 1, 2).float()


def _stage(**params):
    cls = get_stage("arbitrary_style")
    return cls(cls.Params(**params), CPU)


def test_the_paintings_statistics_are_taken_once_when_the_stage_is_built(assets, tmp_path) -> None:
    painting = tmp_path / "moved.png"
    painting.write_bytes(assets["a"].read_bytes())
    stage = _stage(weights=assets["decoder"], style=painting)
    before = stage(_x())
    painting.unlink()  # per-frame work never reads it again
    assert torch.equal(stage(_x()), before)
    assert not torch.equal(before, _stage(weights=assets["decoder"], style=assets["b"])(_x()))


def test_blends_alpha_and_the_fingerprint(assets) -> None:
    a, b, dec = assets["a"], assets["b"], assets["decoder"]
    only_a = _stage(weights=dec, style=a)(_x())
    assert torch.equal(_stage(weights=dec, style={a: 1.0, b: 0.0})(_x()), only_a)
    blend = _stage(weights=dec, style={a: 0.5, b: 0.5})
    assert not torch.equal(blend(_x()), only_a)
    fp = blend.fingerprint()["style"]
    assert [w for _, w in fp] == [0.5, 0.5] and all("sha256" in f for f, _ in fp)
    # alpha 0 decodes the frame's own features: closer to the input than the styled frame
    x = _x()
    err = lambda y: float((y - x).abs().mean())  # noqa: E731
    assert err(_stage(weights=dec, style=a, alpha=0.0)(x)) != err(only_a)
    assert "alpha 0.3" in _stage(weights=dec, style=a, alpha=0.3).describe()


def test_a_job_runs_it_with_a_blend_and_bad_values_name_the_line(assets, tmp_path) -> None:
    make_photos(tmp_path / "in", 2, size=(30, 44))
    job = write_job(tmp_path, f"""
        sources: [{{images: in/}}]
        output: out
        stages:
          - decode
          - arbitrary_style: {{weights: {assets['decoder']}, style: {{{assets['a']}: 0.7, {assets['b']}: 0.3}}, alpha: 0.8}}
          - encode: {{image: {{format: png}}}}
        """)
    result = run_cli_here(str(job))
    assert result.returncode == 0, result.stderr
    outs = sorted((tmp_path / "out").glob("*.png"))
    assert len(outs) == 2 and read_image(outs[0]).shape[:2] == (30, 44)
    stage = prepare(job).stages[1]
    assert stage.params.styles == {assets["a"]: 0.7, assets["b"]: 0.3}
    bad = write_job(tmp_path, f"""
        sources: [{{images: in/}}]
        output: out2
        stages: [decode, {{arbitrary_style: {{weights: {assets['decoder']}, style: missing.jpg}}}}, encode]
        """, name="bad.yaml")
    with pytest.raises(JobError, match=r"bad.yaml:\d+.*missing.jpg.*style image cannot be read"):
        prepare(bad)
    bad.write_text(bad.read_text().replace("style: missing.jpg", f"style: {assets['a']}, alpha: 2"))
    with pytest.raises(JobError, match="alpha must be in"):
        prepare(bad)


def test_a_video_job_with_temporal_smoothing(assets, tmp_path) -> None:
    (tmp_path / "clips").mkdir()
    clip = make_clip(tmp_path / "clips" / "c.mp4", frames=6, size=(48, 32), audio=False)
    job = write_job(tmp_path, f"""
        sources: [{{videos: clips/}}]
        output: out
        stages:
          - decode
          - arbitrary_style: {{weights: {assets['decoder']}, style: {assets['a']}}}
          - temporal_smooth: {{strength: 0.7, flow_preset: ultrafast}}
          - encode: {{video: {{codec: libx264, crf: 18}}, audio: none}}
        """)
    result = run_cli_here(str(job))
    assert result.returncode == 0, result.stderr
    frames, _ = decode_all(tmp_path / "out" / "c.mp4")
    source, _ = decode_all(clip)
    assert len(frames) == len(source) == 6 and frames[0].shape == source[0].shape
    assert float(np.abs(frames[0].astype(int) - source[0].astype(int)).mean()) > 5  # painted


# --------------------------------------------------------------------------- training

@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("adain_data")
    make_photos(d / "content", 3, size=(40, 48), seed=0)
    make_photos(d / "paintings", 2, size=(44, 40), seed=50)
    for p in (d / "paintings").glob("*.png"):  # paintings unlike the photos: flipped, inverted
        write_image(255 - read_image(p)[:, ::-1], p, "png")
    return {"content": d / "content", "style": d / "paintings"}


def _opts(data, out: Path, **kw) -> ArbitraryTrainOptions:
    base = dict(content=data["content"], style=data["style"], out=out, image_size=32,
                batch_size=2, steps=4, log_every=1, sample_every=2, checkpoint_every=2,
                device="cpu", precision="fp32")
    return ArbitraryTrainOptions(**{**base, **kw})


@pytest.mark.parametrize("identity_weight", [0.0, 1.0])
def test_a_few_steps_lower_the_loss_on_a_fixed_batch(data, tmp_path, identity_weight) -> None:
    opts = _opts(data, tmp_path / "d.safetensors", identity_weight=identity_weight)
    trainer = ArbitraryTrainer(opts, torch.device("cpu"), "fp32")
    content = RandomCrops(scan_images(opts.content)[0], 32, seed=7).batch(0, 2)
    style = RandomCrops(scan_images(opts.style)[0], 32, seed=8).batch(0, 2)

    def total() -> float:
        with torch.no_grad():
            return float(sum(trainer.losses(content, style)[0].values()))

    start = total()
    for step in range(6):
        losses = trainer.train_step(content, style, step)
    assert total() < 0.9 * start
    assert (losses["identity"] > 0) == (identity_weight > 0)  # logged only when it is trained


def test_resume_is_exact_with_the_critic_and_the_decoder_runs_in_the_stage(data, tmp_path, assets) -> None:
    whole = train_arbitrary(_opts(data, tmp_path / "whole.safetensors", adversarial_weight=0.5))
    half = _opts(data, tmp_path / "half.safetensors", adversarial_weight=0.5, steps=2)
    train_arbitrary(half)
    with pytest.raises(JobError, match="already holds a training run"):
        train_arbitrary(half)
    with pytest.raises(JobError, match="adversarial_weight was '0.5', now '0.25'"):
        train_arbitrary(dataclasses.replace(half, steps=4, resume=True, adversarial_weight=0.25))
    resumed = train_arbitrary(dataclasses.replace(half, steps=4, resume=True))
    a, b = load_file(str(whole)), load_file(str(resumed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    def rows(name: str) -> list[list[str]]:  # without the seconds column
        lines = (tmp_path / name / "losses.csv").read_text().splitlines()
        return [line.split(",")[:-1] for line in lines]
    assert rows("whole_train")[0] == ["step", "content", "style", "identity", "adversarial", "D",
                                      "total", "lr"]
    assert len(rows("whole_train")) == 5 and rows("half_train") == rows("whole_train")
    assert sorted(p.name for p in (tmp_path / "whole_train" / "samples").iterdir()) == \
        ["step_0000002.png", "step_0000004.png"]
    y = _stage(weights=whole, style=assets["a"])(_x())
    assert y.shape == (2, 3, 24, 36) and float(y.std()) > 0


def test_an_autoencoder_phase_then_a_run_that_starts_from_its_decoder(data, tmp_path) -> None:
    first = train_arbitrary(_opts(data, tmp_path / "ae.safetensors", content_weight=0.0,
                                  style_weight=0.0, identity_weight=1.0))
    rows = [line.split(",") for line in
            (tmp_path / "ae_train" / "losses.csv").read_text().splitlines()[1:]]
    assert all(r[1] == "0" and r[2] == "0" and float(r[3]) > 0 for r in rows)  # identity only
    later = _opts(data, tmp_path / "d.safetensors", init=first, steps=2)
    trainer = ArbitraryTrainer(later, torch.device("cpu"), "fp32")
    start = load_file(str(first))
    assert all(torch.equal(v, start[k]) for k, v in trainer.decoder.state_dict().items())
    train_arbitrary(later)
    first.write_bytes(adain_decoder_file(tmp_path / "other.safetensors").read_bytes())
    with pytest.raises(JobError, match="init_sha256 was"):  # another init: not the same run
        train_arbitrary(dataclasses.replace(later, steps=4, resume=True))
    not_a_decoder = tmp_path / "x.safetensors"
    not_a_decoder.write_bytes(b"junk")
    with pytest.raises(WeightsError, match="x.safetensors"):
        ArbitraryTrainer(dataclasses.replace(later, init=not_a_decoder), torch.device("cpu"), "fp32")
    with pytest.raises(ValueError, match="nothing would train"):
        _opts(data, tmp_path / "z.safetensors", content_weight=0.0, style_weight=0.0)


def test_the_command_trains_reports_skipped_files_and_refuses_bad_options(data, tmp_path) -> None:
    from pipeline.commands.train_arbitrary import _D

    defaults = {f.name: f.default for f in dataclasses.fields(ArbitraryTrainOptions)}
    assert {k: defaults[k] for k in _D} == _D
    style = tmp_path / "paintings"
    style.mkdir()
    for p in data["style"].iterdir():
        (style / p.name).write_bytes(p.read_bytes())
    (style / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "cli.safetensors"
    args = ["train", "arbitrary", str(data["content"]), str(style), "--out", str(out),
            "--image-size", "32", "--batch-size", "1", "--steps", "1", "-q", "--device", "cpu"]
    result = run_cli_here(*args)
    assert result.returncode == 0, result.stderr
    assert "skipped" in result.stderr and "broken.jpg" in result.stderr
    assert isinstance(load_adain_decoder(out), AdaINDecoder)
    bad = run_cli_here("train", "arbitrary", str(data["content"]), str(style), "--image-size", "30",
                       "--out", str(tmp_path / "x.safetensors"))
    assert bad.returncode == 2 and "multiple of 8" in bad.stderr
    missing = run_cli_here("train", "arbitrary", str(tmp_path / "nope"), str(style), "--out",
                           str(tmp_path / "y.safetensors"))
    assert missing.returncode == 2 and "nope" in missing.stderr


# --------------------------------------------------------------------------- the quick paths

def test_stylize_takes_any_painting_and_writes_the_job_a_user_would(assets, tmp_path) -> None:
    make_photos(tmp_path / "in", 2, size=(24, 32))
    saved = tmp_path / "quick.yaml"
    base = ("stylize", str(tmp_path / "in"), "-w", str(assets["decoder"]), "--style-image",
            str(assets["a"]), "--style-image", str(assets["b"]), "--alpha", "0.6", "-q")
    result = run_cli_here(*base, "-o", str(tmp_path / "out"), "--save-job", str(saved))
    assert result.returncode == 0, result.stderr
    text = saved.read_text()
    assert f"arbitrary_style: {{weights: {assets['decoder']}, style: {{{assets['a']}: 0.5, " \
           f"{assets['b']}: 0.5}}, alpha: 0.6}}" in text
    result = run_cli_here(*base, "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "out").glob("*.png"))) == 2
    no_style = run_cli_here("stylize", str(tmp_path / "in"), "-w", str(assets["decoder"]),
                            "-o", str(tmp_path / "x"))
    assert no_style.returncode == 2 and "give the style as --style-image" in no_style.stderr
    style_net = tmp_path / "net.pth"
    from tests.conftest import lively_transformer_net
    torch.save(lively_transformer_net().state_dict(), style_net)
    wrong = run_cli_here("stylize", str(tmp_path / "in"), "-w", str(style_net), "--style-image",
                         str(assets["a"]), "-o", str(tmp_path / "y"))
    assert wrong.returncode == 2 and "needs an arbitrary-style network" in wrong.stderr


def test_sheet_gives_a_row_per_painting_and_per_style_of_a_multi_style_net(assets, tmp_path) -> None:
    from safetensors.torch import save_file

    from pipeline.commands.sheet import LABEL_H
    from pipeline.models.transformer_net import TransformerNet

    photo = tmp_path / "photo.png"
    write_image(natural_image(32, 40, seed=3), photo, "png")
    multi = tmp_path / "three.safetensors"
    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in TransformerNet(3).state_dict().items()}, str(multi))
    out = tmp_path / "sheet.png"
    result = run_cli_here("sheet", str(photo), "-w", str(assets["decoder"]), "-w", str(multi),
                          "--style-image", str(assets["a"]), "--style-image", str(assets["b"]),
                          "--size", "32", "-o", str(out), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    rows = 1 + 3 + 4  # the input; decoder: two paintings and their blend; the net: three styles and a blend
    assert read_image(out).shape[0] == rows * (32 + LABEL_H) + (rows - 1) * 4
    assert "three: style 2, strength 1" in result.stderr  # no names in its metadata: numbered
    assert "three: even blend of 3, strength 1" in result.stderr
    alone = run_cli_here("sheet", str(photo), "-w", str(assets["decoder"]), "-o", str(out))
    assert alone.returncode == 2 and "no --style-image" in alone.stderr


def _script(name: str):
    import importlib.util
    import sys

    from tests.conftest import REPO
    sys.path.insert(0, str(REPO / "scripts"))  # make_smooth_content imports make_demo_inputs
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_training_picture_scripts_draw_the_same_pictures_every_time(tmp_path) -> None:
    """The shipped models' provenance names these scripts: they must redraw the same data."""
    styles, smooth = _script("make_procedural_styles"), _script("make_smooth_content")
    for run in ("a", "b"):
        styles.main(tmp_path / run / "styles", count=4, size=48, seed=0)
        smooth.main(tmp_path / run / "smooth", count=2, size=40)
    names = sorted(p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").rglob("*.png"))
    assert names == ["smooth/backdrop_1001.png", "smooth/landscape_1000.png", "styles/dots_003.png",
                     "styles/marble_002.png", "styles/mosaic_001.png", "styles/strokes_000.png"]
    for name in names:
        a, b = read_image(tmp_path / "a" / name), read_image(tmp_path / "b" / name)
        assert np.array_equal(a, b) and a.std() > 5  # the same, and not blank


def test_the_stage_paints_what_training_decoded(data, tmp_path) -> None:
    """The stage and the trainer are one computation: a style crop as the painting (at its own
    size), a content crop as the frame, give the trainer's decoded image, bit for bit."""
    out = train_arbitrary(_opts(data, tmp_path / "one.safetensors", steps=1))
    trainer = ArbitraryTrainer(_opts(data, out), torch.device("cpu"), "fp32")
    trainer.decoder.load_state_dict(load_file(str(out)))
    content = RandomCrops(scan_images(data["content"])[0], 32, seed=1).batch(0, 1)
    style = RandomCrops(scan_images(data["style"])[0], 32, seed=2).batch(0, 1)
    with torch.no_grad():
        _, decoded = trainer.losses(content, style)
    write_image(style[0].permute(1, 2, 0).numpy().copy(), tmp_path / "crop.png", "png")
    y = _stage(weights=out, style=tmp_path / "crop.png", style_size=32)(content.float())
    assert torch.equal(y, decoded.clamp(0, 255))
