"""The ``generate:`` source (issue 15 item 3), with PyTorch-GAN's gan (MLP) and dcgan
generators built key by key and checked against a functional forward pass."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from pipeline.job.config import load_job
from pipeline.ops.noise import latent_vector
from pipeline.sources import get_source
from tests.conftest import REPO, lively_transformer_net, run_cli_here, write_job


def _linear(cout: int, cin: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    return {"weight": torch.randn(cout, cin, generator=gen) / cin ** 0.5,
            "bias": 0.1 * torch.randn(cout, generator=gen)}


def _conv(cout: int, cin: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    return {"weight": torch.randn(cout, cin, 3, 3, generator=gen) / (9 * cin) ** 0.5,
            "bias": 0.1 * torch.randn(cout, generator=gen)}


def _bn(c: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    return {"weight": 1 + 0.1 * torch.randn(c, generator=gen), "bias": 0.1 * torch.randn(c, generator=gen),
            "running_mean": 0.1 * torch.randn(c, generator=gen),
            "running_var": 0.5 + torch.rand(c, generator=gen), "num_batches_tracked": torch.tensor(100)}


def _put(sd: dict, prefix: str, tensors: dict) -> None:
    sd.update({f"{prefix}.{k}": v for k, v in tensors.items()})


def mlp_state_dict(latent: int, shape: tuple[int, int, int], seed: int = 0) -> dict:
    """implementations/gan: Linear 128, [Linear, BatchNorm1d(c, 0.8), LeakyReLU] x3, Linear, Tanh."""
    gen, sd = torch.Generator().manual_seed(seed), {}
    _put(sd, "model.0", _linear(128, latent, gen))
    for idx, (cin, cout) in zip((2, 5, 8), ((128, 256), (256, 512), (512, 1024))):
        _put(sd, f"model.{idx}", _linear(cout, cin, gen))
        _put(sd, f"model.{idx + 1}", _bn(cout, gen))
    _put(sd, "model.11", _linear(int(np.prod(shape)), 1024, gen))
    return sd


def mlp_forward(sd: dict, z: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    x = F.leaky_relu(F.linear(z, sd["model.0.weight"], sd["model.0.bias"]), 0.2)
    for idx in (2, 5, 8):
        x = F.linear(x, sd[f"model.{idx}.weight"], sd[f"model.{idx}.bias"])
        b = f"model.{idx + 1}"
        x = F.batch_norm(x, sd[f"{b}.running_mean"], sd[f"{b}.running_var"], sd[f"{b}.weight"],
                         sd[f"{b}.bias"], training=False, eps=0.8)
        x = F.leaky_relu(x, 0.2)
    return torch.tanh(F.linear(x, sd["model.11.weight"], sd["model.11.bias"])).view(-1, *shape)


def dcgan_state_dict(latent: int, size: int, channels: int, seed: int = 1, prefix: str = "conv_blocks") -> dict:
    """implementations/dcgan: l1 Linear -> BN(128), Up, conv 128, BN(128, 0.8), LReLU, Up,
    conv 64, BN(64, 0.8), LReLU, conv C, Tanh (older copies: ``conv_model``)."""
    gen, sd = torch.Generator().manual_seed(seed), {}
    _put(sd, "l1.0", _linear(128 * (size // 4) ** 2, latent, gen))
    _put(sd, f"{prefix}.0", _bn(128, gen))
    _put(sd, f"{prefix}.2", _conv(128, 128, gen))
    _put(sd, f"{prefix}.3", _bn(128, gen))
    _put(sd, f"{prefix}.6", _conv(64, 128, gen))
    _put(sd, f"{prefix}.7", _bn(64, gen))
    _put(sd, f"{prefix}.9", _conv(channels, 64, gen))
    return sd


def dcgan_forward(sd: dict, z: torch.Tensor, size: int, prefix: str = "conv_blocks") -> torch.Tensor:
    def bn(x, key, eps):
        return F.batch_norm(x, sd[f"{key}.running_mean"], sd[f"{key}.running_var"], sd[f"{key}.weight"],
                            sd[f"{key}.bias"], training=False, eps=eps)

    def conv(x, key):
        return F.conv2d(x, sd[f"{key}.weight"], sd[f"{key}.bias"], padding=1)

    p = prefix
    x = F.linear(z, sd["l1.0.weight"], sd["l1.0.bias"]).view(-1, 128, size // 4, size // 4)
    x = F.interpolate(bn(x, f"{p}.0", 1e-5), scale_factor=2, mode="nearest")
    x = F.interpolate(F.leaky_relu(bn(conv(x, f"{p}.2"), f"{p}.3", 0.8), 0.2), scale_factor=2, mode="nearest")
    x = F.leaky_relu(bn(conv(x, f"{p}.6"), f"{p}.7", 0.8), 0.2)
    return torch.tanh(conv(x, f"{p}.9"))


def _expected(forward, sd: dict, seed: int, index: int, latent: int) -> np.ndarray:
    sd64 = {k: v.double() if v.is_floating_point() else v for k, v in sd.items()}
    with torch.no_grad():
        y = forward(sd64, latent_vector(seed, index, latent).double()[None])[0]
    image = ((y + 1) * 127.5).round().clamp(0, 255).byte()
    return image.expand(3, -1, -1).permute(1, 2, 0).numpy()  # grayscale: replicated


def _job(folder: Path, weights: str, count: int, seed: int, *, output: str = "out", into: str = "synthetic",
         extra: str = "", stages: str = "") -> Path:
    return write_job(folder, f"""
        sources:
          - generate: {{weights: {weights}, count: {count}, seed: {seed}, into: {into}}}
        {extra}
        output: {output}
        stages: [decode, {stages}{{encode: {{image: {{format: png}}}}}}]
        """, name=f"{output}.yaml")


CASES = {  # name -> (state dict, forward, latent, shape)
    "gan_mlp": (lambda: mlp_state_dict(100, (1, 12, 12)),
                lambda sd, z: mlp_forward(sd, z, (1, 12, 12)), 100, (1, 12, 12)),
    "gan_mlp_rgb": (lambda: mlp_state_dict(16, (3, 8, 8), seed=3),
                    lambda sd, z: mlp_forward(sd, z, (3, 8, 8)), 16, (3, 8, 8)),
    "dcgan": (lambda: dcgan_state_dict(100, 16, 3), lambda sd, z: dcgan_forward(sd, z, 16), 100, (3, 16, 16)),
    "dcgan_conv_model": (lambda: dcgan_state_dict(32, 8, 1, prefix="conv_model"),
                         lambda sd, z: dcgan_forward(sd, z, 8, prefix="conv_model"), 32, (1, 8, 8)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_pytorch_gan_generators_give_their_forward_pass_through_a_job(tmp_path: Path, case: str) -> None:
    make_sd, forward, latent, shape = CASES[case]
    sd = make_sd()
    torch.save(sd, tmp_path / "generator.pth")
    job = _job(tmp_path, "generator.pth", count=3, seed=11)
    shown = run_cli_here("validate", str(job), *(["--estimate"] if case == "dcgan" else []))
    assert shown.returncode == 0 and f"z {latent}, {shape[1]}x{shape[2]}x{shape[0]}" in shown.stdout, \
        shown.stdout + shown.stderr
    if case == "dcgan":  # timed on a generated image, its pixels from the network's shape
        assert "nothing to time" not in shown.stdout and "estimate" in shown.stdout
    result = run_cli_here(str(job))
    assert result.returncode == 0, result.stderr
    assert "done 3, skipped 0" in result.stderr  # counted like any source's units
    for i in range(3):
        out = np.asarray(Image.open(tmp_path / "out" / "synthetic" / f"{i:06d}.png"))
        expected = _expected(forward, sd, 11, i, latent)
        assert out.shape == expected.shape
        assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1 and (out == expected).mean() > 0.99
        assert len(np.unique(out)) > 5, "a flat image would make this vacuous"


@pytest.fixture
def dcgan_file(tmp_path: Path) -> Path:
    path = tmp_path / "g.pth"
    torch.save(dcgan_state_dict(100, 16, 3), path)
    return path


def _outputs(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def test_image_i_depends_on_seed_and_index_alone(tmp_path: Path, dcgan_file: Path) -> None:
    assert run_cli_here(str(_job(tmp_path, dcgan_file.name, count=3, seed=5))).returncode == 0
    first = _outputs(tmp_path / "out")
    assert list(first) == ["synthetic/000000.png", "synthetic/000001.png", "synthetic/000002.png"]
    # A larger count later adds images; the first ones are the same bytes (nothing redone).
    more = run_cli_here(str(_job(tmp_path, dcgan_file.name, count=5, seed=5)))
    assert more.returncode == 0 and "done 2, skipped 3" in more.stderr
    grown = _outputs(tmp_path / "out")
    assert {k: grown[k] for k in first} == first and len(grown) == 5
    # Batched with others or alone, and at any thread count: the same pixels.
    assert run_cli_here(str(_job(tmp_path, dcgan_file.name, count=5, seed=5, output="again",
                                 extra="batch_size: 3"))).returncode == 0
    assert _outputs(tmp_path / "again") == grown
    source = get_source("generate")(load_job(tmp_path / "out.yaml").sources[0])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = source.read(Path("x/000004.png"))
        torch.set_num_threads(2)
        two = source.read(Path("x/000004.png"))
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(one, two)
    assert np.array_equal(one, np.asarray(Image.open(tmp_path / "out" / "synthetic" / "000004.png")))
    # Another seed gives other images, and over the same output it is refused, named.
    changed = run_cli_here(str(_job(tmp_path, dcgan_file.name, count=5, seed=6)))
    assert changed.returncode == 2 and "generated.synthetic.seed: 5 -> 6" in changed.stderr
    assert run_cli_here(str(_job(tmp_path, dcgan_file.name, count=2, seed=6, output="other"))).returncode == 0
    assert _outputs(tmp_path / "other")["synthetic/000000.png"] != grown["synthetic/000000.png"]


def test_a_second_generator_may_be_added_to_a_job(tmp_path: Path, dcgan_file: Path) -> None:
    torch.save(mlp_state_dict(100, (1, 12, 12)), tmp_path / "mlp.pth")
    assert run_cli_here(str(_job(tmp_path, dcgan_file.name, count=2, seed=1))).returncode == 0
    both = write_job(tmp_path, """
        sources:
          - generate: {weights: g.pth, count: 2, seed: 1, into: synthetic}
          - generate: {weights: mlp.pth, count: 2}
            into: digits
        output: out
        stages: [decode, {encode: {image: {format: png}}}]
        contact_sheet: {path: sheet.png, images: 3, height: 32}
        """, name="both.yaml")
    result = run_cli_here(str(both))
    assert result.returncode == 0 and "done 2, skipped 2" in result.stderr, result.stderr
    assert sorted(_outputs(tmp_path / "out")) == ["digits/000000.png", "digits/000001.png",
                                                 "synthetic/000000.png", "synthetic/000001.png"]
    sheet = np.asarray(Image.open(tmp_path / "sheet.png"))  # inputs as the source makes them
    assert sheet.shape[0] == 3 * 32 + 2 * 4 and "contact sheet" in result.stderr


def test_wrong_weights_and_bad_options_are_located_errors(tmp_path: Path) -> None:
    torch.save(lively_transformer_net().state_dict(), tmp_path / "style.pth")
    result = run_cli_here("validate", str(_job(tmp_path, "style.pth", count=2, seed=0)))
    assert result.returncode == 2
    assert "out.yaml:2" in result.stderr and "style.pth" in result.stderr
    assert "looks like a fast style (TransformerNet) checkpoint, not a generator from noise" in result.stderr
    torch.save(dcgan_state_dict(100, 16, 3), tmp_path / "g.pth")
    for body, message in [
        ("{weights: g.pth, count: 0}", "count must be at least 1"),
        ("{weights: g.pth}", "missing required key 'count'"),
        ("{weights: g.pth, count: 2, sede: 1}", "unknown key 'sede'; did you mean 'seed'?"),
        ("g.pth", "expected a mapping of options"),
    ]:
        job = write_job(tmp_path, f"sources: [{{generate: {body}}}]\noutput: o\nstages: [decode, encode]\n",
                        name="bad.yaml")
        bad = run_cli_here("validate", str(job))
        assert bad.returncode == 2 and message in bad.stderr and "bad.yaml:1" in bad.stderr, bad.stderr


def test_a_killed_generate_job_resumes_to_identical_outputs(tmp_path: Path, dcgan_file: Path) -> None:
    torch.save(lively_transformer_net(seed=2).state_dict(), tmp_path / "style.pth")
    stages = "{resize: {long_side: 128}}, {fast_style: {weights: style.pth}}, "
    reference = _job(tmp_path, dcgan_file.name, count=60, seed=3, output="ref", stages=stages)
    done = run_cli_here(str(reference))
    assert done.returncode == 0 and "done 60, skipped 0 (already done), failed 0" in done.stderr
    job = _job(tmp_path, dcgan_file.name, count=60, seed=3, output="out", stages=stages)
    proc = subprocess.Popen([sys.executable, str(REPO / "run_pipeline.py"), str(job), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    ledger = tmp_path / "out" / ".ledger.jsonl"
    at_kill = 0
    while proc.poll() is None and at_kill < 3:
        at_kill = ledger.read_text().count('"done"') if ledger.exists() else 0
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before the kill"
    partial = _outputs(tmp_path / "out")
    assert 3 <= len(partial) < 60, "the kill came too late to test anything"
    resumed = run_cli_here(str(job))
    assert resumed.returncode == 0, resumed.stderr
    assert int(resumed.stderr.split("skipped ")[1].split()[0]) >= at_kill  # none redone
    assert _outputs(tmp_path / "out") == _outputs(tmp_path / "ref")
    header = json.loads(ledger.read_text().splitlines()[0])
    assert header["fingerprint"]["generated"]["synthetic"]["seed"] == 3


def test_a_non_square_mlp_generator_takes_its_shape_from_the_job(tmp_path: Path) -> None:
    sd = mlp_state_dict(100, (1, 8, 12), seed=4)
    torch.save(sd, tmp_path / "wide.pth")
    plain = run_cli_here("validate", str(_job(tmp_path, "wide.pth", count=2, seed=0)))
    assert plain.returncode == 2 and "not a square 1- or 3-channel image" in plain.stderr
    assert "image_shape: CxHxW" in plain.stderr
    wrong = write_job(tmp_path, "sources: [{generate: {weights: wide.pth, count: 2, image_shape: 1x8x13}}]\n"
                                "output: o\nstages: [decode, encode]\n", name="wrong.yaml")
    result = run_cli_here("validate", str(wrong))
    assert result.returncode == 2 and "has 104 values; the file's last layer makes 96" in result.stderr
    job = write_job(tmp_path, "sources: [{generate: {weights: wide.pth, count: 2, image_shape: 1x8x12}}]\n"
                              "output: out\nstages: [decode, {encode: {image: {format: png}}}]\n",
                    name="wide.yaml")
    assert run_cli_here(str(job)).returncode == 0
    out = np.asarray(Image.open(tmp_path / "out" / "000001.png"))
    expected = _expected(lambda sd, z: mlp_forward(sd, z, (1, 8, 12)), sd, 0, 1, 100)
    assert out.shape == (8, 12, 3) and np.abs(out.astype(int) - expected.astype(int)).max() <= 1


def test_a_generated_image_too_big_for_the_chain_fails_named(tmp_path: Path, dcgan_file: Path,
                                                                   monkeypatch) -> None:
    """No header to judge a generated image by: the memory gate judges it once made."""
    torch.save(lively_transformer_net().state_dict(), tmp_path / "style.pth")
    monkeypatch.setenv("STYLIZE_MEMORY_BUDGET", "1GiB")
    job = _job(tmp_path, dcgan_file.name, count=2, seed=0, stages="{resize: {scale: 800}}, "
               "{fast_style: {weights: style.pth}}, ")
    result = run_cli_here(str(job))
    assert result.returncode == 1 and "done 0, skipped 0 (already done), failed 2" in result.stderr
    # 16x16 made, 12800x12800 after the resize: refused before the style net would need it
    assert "g.pth/000000.png [decode]: 16x16 (0.0 Mpx) needs about" in result.stderr, result.stderr
    assert "at fast_style but the budget is 1.0 GiB" in result.stderr


def test_validate_plans_a_million_generated_images_without_making_them(tmp_path: Path, dcgan_file: Path,
                                                                      monkeypatch) -> None:
    """Issue 28 item 4: the plan holds the range; validate (and its estimate) look at two units."""
    from pipeline.job import numbered

    made = []
    iterate = numbered.Numbered.__iter__

    def counted(self):
        for pair in iterate(self):
            made.append(pair)
            yield pair

    monkeypatch.setattr(numbered.Numbered, "__iter__", counted)
    job = _job(tmp_path, dcgan_file.name, count=1_000_000, seed=0)
    shown = run_cli_here("validate", str(job), "--estimate")
    assert shown.returncode == 0, shown.stderr
    assert "(1000000 images, seed 0" in shown.stdout and "units     1000000" in shown.stdout
    assert "256.0 Mpx" in shown.stdout  # 16x16 each, counted from two, not from a million
    assert 0 < len(made) <= 10, f"{len(made)} generated units were made to validate the job"


def test_a_count_past_the_limit_is_refused_and_first_splits_the_set(tmp_path: Path, dcgan_file: Path) -> None:
    from pipeline.sources.generate import MAX_COUNT

    too_many = run_cli_here("validate", str(_job(tmp_path, dcgan_file.name, count=1_000_000_000, seed=0)))
    assert too_many.returncode == 2, too_many.stderr
    assert f"count 1,000,000,000 is more than one job plans ({MAX_COUNT:,} images" in too_many.stderr
    assert "first:" in too_many.stderr and "out.yaml:2" in too_many.stderr
    # Two jobs of a split set make the images one job makes, under the same names.
    assert run_cli_here(str(_job(tmp_path, dcgan_file.name, count=4, seed=2, output="whole"))).returncode == 0
    for output, first in (("part_a", 0), ("part_b", 2)):
        job = write_job(tmp_path, f"""
            sources: [{{generate: {{weights: {dcgan_file.name}, count: 2, first: {first}, seed: 2}},
                        into: synthetic}}]
            output: parts
            stages: [decode, {{encode: {{image: {{format: png}}}}}}]
            """, name=f"{output}.yaml")
        assert run_cli_here(str(job)).returncode == 0
    assert _outputs(tmp_path / "parts") == _outputs(tmp_path / "whole")


def test_a_generated_range_and_a_listed_file_or_another_range_writing_one_name_are_refused(
        tmp_path: Path, dcgan_file: Path) -> None:
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "photos" / "000005.png")
    clash = write_job(tmp_path, f"""
        sources:
          - generate: {{weights: {dcgan_file.name}, count: 10, seed: 0}}
          - images: photos/
        output: out
        stages: [decode, {{encode: {{image: {{format: png}}}}}}]
        """, name="clash.yaml")
    result = run_cli_here("validate", str(clash))
    assert result.returncode == 2 and "clash.yaml:3" in result.stderr, result.stderr
    assert "000005.png' would be written to '000005.png', where sources[0] writes a generated image" \
        in result.stderr
    for first, refused in ((5, True), (10, False)):
        two = write_job(tmp_path, f"""
            sources:
              - generate: {{weights: {dcgan_file.name}, count: 10, seed: 0}}
              - generate: {{weights: {dcgan_file.name}, count: 10, seed: 1, first: {first}}}
            output: out
            stages: [decode, {{encode: {{image: {{format: png}}}}}}]
            """, name="two.yaml")
        result = run_cli_here("validate", str(two))
        assert (result.returncode == 2) == refused, result.stderr
        if refused:
            assert "sources[0] and sources[1] would both write the same numbered images" in result.stderr
