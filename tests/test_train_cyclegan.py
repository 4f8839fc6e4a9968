"""CycleGAN training (Zhu et al. 2017) on tiny generated folders, on the CPU.

Two folders of 6 images (reddish and bluish gradients), 32 px crops and
ngf/ndf 8 keep a step at tens of milliseconds, so the real loop, files,
resume and CLI paths all run here.
"""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from pipeline.commands.train_cyclegan import command
from pipeline.machine.context import RunContext
from pipeline.errors import JobError, MediaError
from pipeline.models.checkpoints import read_safetensors_metadata
from pipeline.stages import get_stage
from pipeline.train.cyclegan import CycleGanTrainer, CycleGanTrainOptions, train_cyclegan
from pipeline.train.gan import linear_decay
from pipeline.train.image_pool import ImagePool

REPO = Path(__file__).resolve().parents[1]
TINY = dict(image_size=32, generator="resnet_6blocks", ngf=8, ndf=8, device="cpu",
            precision="fp32", log_every=1, sample_every=1000, checkpoint_every=1000)


def gradient_image(h: int, w: int, main: int, seed: int) -> np.ndarray:
    """A gradient dominated by channel ``main`` (0 red, 2 blue), with a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[..., main] = 150 + 100 * xx / (w - 1)
    img[..., 1] = 40 + 80 * yy / (h - 1)
    img[..., 2 - main] = 30 + 40 * (xx + yy) / (h + w) + rng.uniform(0, 30)
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).round().astype(np.uint8)


def make_domain(folder: Path, main: int, n: int = 6) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(gradient_image(40, 44, main, seed=10 * main + i)).save(folder / f"{i}.png")
    return folder


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """32 px tensors are too small to split: a second OpenMP thread only adds
    synchronisation, which costs 50x when the cores are busy with other work."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def domains(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("domains")
    return make_domain(root / "reds", 0), make_domain(root / "blues", 2)


def tiny_opts(domains, out: Path, **kw) -> CycleGanTrainOptions:
    return CycleGanTrainOptions(domains[0], domains[1], out, **{**TINY, **kw})


def loss_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return [row[:-1] for row in csv.reader(f)]  # without the wall-time column


def net_states(out: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {n: torch.load(out / f"latest_net_{n}.pth", weights_only=True)
            for n in ("G_A", "G_B", "D_A", "D_B")}


def assert_same_nets(a: dict, b: dict) -> None:
    for name in a:
        for key in a[name]:
            torch.testing.assert_close(a[name][key], b[name][key], rtol=0, atol=1e-6,
                                       msg=lambda m: f"{name}.{key}: {m}")


# bf16/fp16: autocast and (fp16) GradScaler, the CUDA recipe's paths, on CPU.
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_generator_and_cycle_losses_fall_on_a_fixed_batch(domains, tmp_path, precision):
    opts = tiny_opts(domains, tmp_path)
    trainer = CycleGanTrainer(opts, torch.device("cpu"), precision)
    a = torch.from_numpy(gradient_image(32, 32, 0, 1)).permute(2, 0, 1)[None]
    b = torch.from_numpy(gradient_image(32, 32, 2, 2)).permute(2, 0, 1)[None]
    totals = []
    for _ in range(20):
        l = trainer.train_step(a, b, lr=opts.lr)
        totals.append(l["G_A"] + l["G_B"] + l["cycle_A"] + l["cycle_B"])
    assert np.mean(totals[-5:]) < 0.7 * np.mean(totals[:5]), totals


def _walk(obj) -> None:
    """Only plain data in a training checkpoint (what weights_only promises)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            assert isinstance(k, (str, int)), k
            _walk(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _walk(v)
    else:
        assert obj is None or isinstance(obj, (torch.Tensor, int, float, str, bool)), type(obj)


def test_outputs_load_in_the_cyclegan_stage(domains, tmp_path):
    out = tmp_path / "run"
    written = train_cyclegan(tiny_opts(domains, out, steps=3, sample_every=2, log_every=2))
    for key in ("G_A", "G_B", "D_A", "D_B", "G_A.safetensors", "G_B.safetensors"):
        assert written[key].is_file(), key
    assert written["G_A"].name == "latest_net_G_A.pth"
    stage_cls = get_stage("cyclegan")
    ctx = RunContext(torch.device("cpu"), "fp32", 1)
    x = torch.rand(1, 3, 30, 34) * 255  # not a multiple of 4: the stage pads and crops
    for key in ("G_A", "G_B", "G_A.safetensors", "G_B.safetensors"):
        stage = stage_cls(stage_cls.Params(weights=written[key]), ctx)
        y = stage(x)
        assert y.shape == x.shape and torch.isfinite(y).all()
        assert "resnet_6blocks ngf=8" in stage.describe()
    meta = read_safetensors_metadata(written["G_B.safetensors"])
    assert meta["direction"] == "B->A" and meta["architecture"] == "resnet_6blocks"
    assert (meta["folder_a"], meta["folder_a_images"], meta["steps"]) == ("reds", "6", "3")
    assert read_safetensors_metadata(written["G_A.safetensors"])["direction"] == "A->B"

    state = torch.load(written["checkpoint"], weights_only=True)
    _walk(state)
    assert state["step"] == 3
    rows = loss_rows(written["losses"])
    assert rows[0] == ["step", "D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B",
                       "idt_B", "lr"]
    assert [r[0] for r in rows[1:]] == ["2", "3"]
    grids = sorted((out / "samples").glob("*.png"))
    assert [g.name for g in grids] == ["step_0000002.png", "step_0000003.png"]
    assert np.asarray(Image.open(grids[0])).shape == (64, 96, 3)  # 2 rows x 3 columns of 32


_KILLED_RUN = """
import os, signal, sys
from pathlib import Path
from pipeline.train.cyclegan import CycleGanTrainOptions, train_cyclegan
opts = CycleGanTrainOptions(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), **{tiny})
def on_step(info):
    if info.step == 3:
        os.kill(os.getpid(), signal.SIGKILL)
train_cyclegan(opts, on_step)
"""


def test_resume_after_stop_or_sigkill_equals_a_straight_run(domains, tmp_path):
    # pool_size 2 fills at step 2, so the pools' random swaps must match too; a
    # losses.csv row every 3 steps spans both resume points, so the log's sums must.
    kw = dict(steps=6, decay_from=3, pool_size=2, checkpoint_every=2, log_every=3)
    straight = tmp_path / "straight"
    train_cyclegan(tiny_opts(domains, straight, **kw))

    # Stopped cleanly at step 4 (what Ctrl-C does: a checkpoint there), then resumed.
    stopped = tmp_path / "stopped"
    train_cyclegan(tiny_opts(domains, stopped, **kw), on_step=lambda info: info.step == 4)
    assert torch.load(stopped / "checkpoint.pt", weights_only=True)["step"] == 4
    train_cyclegan(tiny_opts(domains, stopped, resume=True, **kw))

    # A real SIGKILL at step 3 of a real process, after step 3's row was written;
    # resumed from the step-2 checkpoint, which must drop that row and redo it.
    killed = tmp_path / "killed"
    tiny = repr({**TINY, **kw})
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_KILLED_RUN.format(tiny=tiny)),
                           str(domains[0]), str(domains[1]), str(killed)],
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == -9, proc.stderr
    assert [r[0] for r in loss_rows(killed / "losses.csv")] == ["step", "3"]
    assert torch.load(killed / "checkpoint.pt", weights_only=True)["step"] == 2
    train_cyclegan(tiny_opts(domains, killed, resume=True, **kw))

    reference = net_states(straight)
    assert [r[0] for r in loss_rows(straight / "losses.csv")] == ["step", "3", "6"]
    for run in (stopped, killed):
        assert_same_nets(reference, net_states(run))
        assert loss_rows(run / "losses.csv") == loss_rows(straight / "losses.csv")
    # Resuming a finished run trains nothing and changes nothing.
    train_cyclegan(tiny_opts(domains, stopped, resume=True, **kw))
    assert_same_nets(reference, net_states(stopped))


def test_resume_refuses_changed_options_and_fresh_runs_refuse_old_folders(domains, tmp_path):
    opts = tiny_opts(domains, tmp_path, steps=2)
    train_cyclegan(opts)
    with pytest.raises(JobError, match="already holds a CycleGAN run.*--resume"):
        train_cyclegan(opts)
    with pytest.raises(JobError) as err:
        train_cyclegan(replace(opts, resume=True, seed=1, lambda_cycle=5.0))
    assert "seed was 0, now 1" in str(err.value)
    assert "lambda_cycle was 10.0, now 5.0" in str(err.value)


def test_bad_options_are_refused_with_what_is_valid(tmp_path):
    with pytest.raises(JobError, match="resnet_9blocks, resnet_6blocks"):
        CycleGanTrainOptions(tmp_path, tmp_path, tmp_path, generator="resnet_7blocks")
    with pytest.raises(JobError, match="image_size must be a multiple of 4 and at least 24"):
        CycleGanTrainOptions(tmp_path, tmp_path, tmp_path, image_size=30)


def test_empty_folder_is_named(domains, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MediaError) as err:
        train_cyclegan(CycleGanTrainOptions(domains[0], empty, tmp_path / "out", **TINY))
    assert str(empty) in str(err.value)


def cli() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command("cyclegan")(command)

    @app.callback()
    def main() -> None:  # keeps "cyclegan" a sub-command, as under `train`
        """Training commands."""

    return app


def test_cli_reports_skipped_files_and_errors(domains, tmp_path):
    folder_a = make_domain(tmp_path / "a", 0, n=2)
    (folder_a / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    args = ["cyclegan", str(folder_a), str(domains[1]), "--out", str(tmp_path / "out"),
            "--image-size", "32", "--generator", "resnet_6blocks", "--ngf", "8", "--ndf", "8",
            "--steps", "2", "--device", "cpu", "--quiet"]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and "broken.png" in result.output
    assert (tmp_path / "out" / "G_B.safetensors").is_file()

    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(cli(), ["cyclegan", str(empty), *args[2:]])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and str(empty) in result.output


def test_cli_ctrl_c_finishes_the_step_and_writes_a_checkpoint(domains, tmp_path, monkeypatch):
    import pipeline.train.cyclegan as module  # the command imports it from here when it runs

    def train_and_press_ctrl_c(opts, on_step, **kw):
        def pressed_at_step_2(info):
            if info.step == 2:
                os.kill(os.getpid(), signal.SIGINT)  # delivered to this (main) thread
            return on_step(info)
        return train_cyclegan(opts, pressed_at_step_2, **kw)

    monkeypatch.setattr(module, "train_cyclegan", train_and_press_ctrl_c)
    out = tmp_path / "out"
    args = ["cyclegan", str(domains[0]), str(domains[1]), "--out", str(out), "--image-size", "32",
            "--generator", "resnet_6blocks", "--ngf", "8", "--ndf", "8", "--steps", "5",
            "--device", "cpu", "--quiet"]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 130, result.output
    assert "--resume" in result.output
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


def test_help_lists_every_option():
    result = CliRunner().invoke(cli(), ["cyclegan", "--help"])
    assert result.exit_code == 0
    for option in ("--out", "--image-size", "--generator", "--ngf", "--ndf", "--batch-size",
                   "--steps", "--decay-from", "--lr", "--lambda-cycle", "--lambda-identity",
                   "--pool-size", "--device", "--precision", "--seed", "--sample-every",
                   "--checkpoint-every", "--resume", "FOLDER_A", "FOLDER_B"):
        assert option in result.output, option


def _query_all(pool: ImagePool, images: list[torch.Tensor]) -> list[torch.Tensor]:
    return [pool.query(x) for x in images]


def test_image_pool_returns_history_half_the_time_once_full():
    images = [torch.full((1, 3, 2, 2), float(i)) for i in range(400)]
    pool = ImagePool(pool_size=10, seed=7)
    outs = _query_all(pool, images)
    # Filling: every image is stored and returned as it is.
    assert all(torch.equal(o, x) for o, x in zip(outs[:10], images[:10]))
    from_history = sum(not torch.equal(o, x) for o, x in zip(outs[10:], images[10:]))
    assert 0.4 < from_history / 390 < 0.6
    # Deterministic given the seed, and the state restores it exactly.
    again = _query_all(ImagePool(pool_size=10, seed=7), images)
    assert all(torch.equal(a, b) for a, b in zip(outs, again))
    half = ImagePool(pool_size=10, seed=7)
    _query_all(half, images[:200])
    saved = torch.load(_saved(half.state_dict()), weights_only=True)
    restored = ImagePool(pool_size=10, seed=0)
    restored.load_state_dict(saved)
    assert all(torch.equal(a, b) for a, b in zip(_query_all(restored, images[200:]), outs[200:]))
    # A batch gets one decision per image; size 0 passes images through.
    assert pool.query(torch.zeros(3, 3, 2, 2)).shape == (3, 3, 2, 2)
    x = torch.ones(2, 3, 2, 2)
    assert ImagePool(pool_size=0).query(x) is x


def _saved(state: dict):
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


def test_linear_decay_is_the_papers_schedule_in_steps():
    factors = [linear_decay(k, 8, 4) for k in range(8)]
    assert factors == [1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.5, 0.25]


def test_option_norms_are_the_models():
    from pipeline.models.cyclegan import NORMS
    from pipeline.train import cyclegan_options

    assert cyclegan_options.NORMS == NORMS
