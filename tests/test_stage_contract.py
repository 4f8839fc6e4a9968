"""One contract, run over every registered stage.

Transform stages: input not mutated, dtype and device kept, a batch equals
the same images one by one, an empty batch works, alpha passes through, and
the params round-trip through YAML.  decode and encode: the source file is
never modified, many equal one by one, arrays are not mutated.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pipeline.job.config import _parse_variants
from pipeline.machine.context import RunContext
from pipeline.media.images import write_image
from pipeline.models.cyclegan import ResnetGenerator
from pipeline.sources import get_source
from pipeline.stages import get_stage, stage_names
from pipeline.stages.chain import run_stages
from pipeline.stages.variants import chain_for
from pipeline.typed_yaml import ParseContext, load_yaml, parse_value
from tests.conftest import (adain_decoder_file, ghiasi_files, lively_transformer_net, make_photos,
                            natural_image)

CPU = RunContext(device=torch.device("cpu"), precision="fp32", batch_size=None)


def _cyclegan_weights(folder: Path) -> Path:
    torch.manual_seed(1)
    path = folder / "g.pth"
    torch.save(ResnetGenerator(ngf=8, n_blocks=2).state_dict(), path)
    return path


def _style_weights(folder: Path) -> Path:
    path = folder / "s.pth"
    torch.save(lively_transformer_net().state_dict(), path)
    return path


def _paintings(folder: Path) -> Path:
    (folder / "paintings").mkdir(exist_ok=True)
    for seed in (3, 4, 5):
        write_image(natural_image(40, 36, seed=seed), folder / "paintings" / f"p{seed}.png", "png")
    return folder / "paintings"


def _style_image(folder: Path, seed: int = 9) -> Path:
    path = folder / f"style{seed}.png"
    write_image(natural_image(40, 36, seed=seed)[:, ::-1], path, "png")
    return path


# Example options for every stage; a new stage must add itself here.
EXAMPLES = {
    "decode": lambda d: {},
    "encode": lambda d: {"image": {"format": "png"}},
    "resize": lambda d: {"short_side": 20, "multiple_of": 4},
    "tv_denoise": lambda d: {"weight": 0.1},
    # the style controls on (issue 14): blended and colour-kept, batched like the rest
    "fast_style": lambda d: {"weights": str(_style_weights(d)), "strength": 0.6,
                             "preserve_color": True},
    "cyclegan": lambda d: {"weights": str(_cyclegan_weights(d)), "strength": 0.3},
    # a blend of two paintings (Path keys), alpha, and the controls
    "arbitrary_style": lambda d: {"weights": str(adain_decoder_file(d / "adain.safetensors")),
                                  "style": {str(_style_image(d)): 0.6, str(_style_image(d, 2)): 0.4},
                                  "alpha": 0.8, "strength": 0.9, "preserve_color": True},
    # Ghiasi et al.'s network: a style per image from (seed, its key), alpha mixing its own
    "style_augment": lambda d: {**dict(zip(("weights", "predictor"), map(str, ghiasi_files(d / "net")))),
                                "paintings": str(_paintings(d)), "seed": 5, "alpha": 0.7},
    "temporal_smooth": lambda d: {"strength": 0.7, "flow_preset": "ultrafast"},
    "gatys": lambda d: {"style": str(_style_image(d)), "steps": 3, "strength": 0.8},
    # a fan-out: its contract is each branch's flat chain (``_transform``); "soft" blends
    "variants": lambda d: {"plain": [], "soft": {"stages": [{"tv_denoise": {"weight": 0.1}}],
                                                 "strength": 0.5}},
}


def test_every_registered_stage_has_an_example() -> None:
    assert set(EXAMPLES) == set(stage_names())


def _build(name: str, tmp_path: Path, ctx: RunContext = CPU):
    cls = get_stage(name)
    options = EXAMPLES[name](tmp_path)
    job = tmp_path / "params.yaml"
    job.write_text(yaml.safe_dump(options))
    if cls.kind == "variants":  # parsed by the job parser: its branches are stage lists
        params = _parse_variants(load_yaml(job), name, name, ParseContext(job, tmp_path))
    else:
        params = parse_value(cls.Params, load_yaml(job), name, ParseContext(job, tmp_path))
    return cls(params, ctx), params


def _transform(stage):
    """A transform stage, or a variants stage's blending branch as the chain the engine runs;
    called ``f(x, first)``: images are named by their place in the batch from ``first``, as
    the engine names them by their output paths (for a stage that draws per image)."""
    if stage.kind == "variants":
        chain = chain_for([stage], "soft")
        return lambda x, first=0: run_stages(chain, x, _keys(x, first))
    return lambda x, first=0: stage(x, _keys(x, first)) if stage.per_image else stage(x)


def _keys(x: torch.Tensor, first: int) -> list[str]:
    return [f"images/img{first + i}.png" for i in range(len(x))]


def _batch(n: int, channels: int = 3, h: int = 24, w: int = 28) -> torch.Tensor:
    images = [natural_image(h, w, seed=i) for i in range(n)]
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    if channels == 4:
        alpha = torch.linspace(0, 255, w).expand(n, 1, h, w)
        x = torch.cat([x, alpha], dim=1)
    return x


TRANSFORMS = [n for n in EXAMPLES if n not in ("decode", "encode")]


@pytest.mark.parametrize("name", TRANSFORMS)
def test_transform_contract(name: str, tmp_path: Path) -> None:
    stage = _transform(_build(name, tmp_path)[0])
    x = _batch(3)
    before = x.clone()
    y = stage(x)
    assert torch.equal(x, before), "input mutated"
    assert y.dtype == x.dtype and y.device == x.device
    assert y.ndim == 4 and y.shape[:2] == x.shape[:2]
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 255
    one_by_one = torch.cat([stage(x[i:i + 1], i) for i in range(3)])
    # a twentieth of an 8-bit level: convolutions sum in another order for another batch size
    # (style_augment's deep net: 0.0188 at most on an AMD EPYC's oneDNN, under 0.01 on Intel)
    torch.testing.assert_close(y, one_by_one, atol=5e-2, rtol=0)
    empty = stage(x[:0])
    assert empty.shape[0] == 0 and empty.shape[1] == 3 and empty.dtype == x.dtype


@pytest.mark.parametrize("name", TRANSFORMS)
def test_transform_keeps_bf16_and_alpha(name: str, tmp_path: Path) -> None:
    stage = _transform(_build(name, tmp_path)[0])
    x = _batch(2, channels=4)
    y = stage(x)
    assert y.shape[1] == 4
    if y.shape[-2:] == x.shape[-2:]:  # colour stages leave alpha alone
        torch.testing.assert_close(y[:, 3:], x[:, 3:])
    else:  # geometry stages move alpha with the pixels
        assert y[:, 3].min() >= 0 and y[:, 3].max() <= 255
    xb = _batch(2).to(torch.bfloat16)
    assert stage(xb).dtype == torch.bfloat16


# variants' params hold parsed stages, not YAML values: tests/test_variants.py parses them
@pytest.mark.parametrize("name", [n for n in EXAMPLES if n != "variants"])
def test_params_round_trip_through_yaml(name: str, tmp_path: Path) -> None:
    cls = get_stage(name)
    _, params = _build(name, tmp_path)
    as_dict = dataclasses.asdict(params)
    text = yaml.safe_dump(_plain(as_dict))
    again_path = tmp_path / "again.yaml"
    again_path.write_text(text)
    again = parse_value(cls.Params, load_yaml(again_path), name, ParseContext(again_path, tmp_path))
    assert again == params


def _plain(value):
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items() if v is not None}
    return str(value) if isinstance(value, Path) else value


def test_decode_contract(tmp_path: Path) -> None:
    """What the chain's head gets from the image source: the same pixels in any order, sources untouched."""
    source = get_source("images")(None)
    paths = make_photos(tmp_path / "src", 3)
    before = [p.read_bytes() for p in paths]
    many = [source.read(p) for p in paths]
    again = [source.read(p) for p in reversed(paths)][::-1]
    assert [p.read_bytes() for p in paths] == before, "source modified"
    for a, b in zip(many, again):
        assert a.dtype == np.uint8 and a.shape == (24, 32, 3)
        np.testing.assert_array_equal(a, b)


def test_encode_contract(tmp_path: Path) -> None:
    stage, _ = _build("encode", tmp_path)
    image = natural_image(20, 24, seed=3)
    before = image.copy()
    out = tmp_path / "x.partial"
    stage.write(image, out, ".jpg")
    np.testing.assert_array_equal(image, before)
    png = tmp_path / "x.png"
    out.rename(png)
    np.testing.assert_array_equal(get_source("images")(None).read(png), image)
    assert stage.output_relpath(Path("a/b.jpg")) == Path("a/b.png")
