"""Stages, one file each; importing this package registers them all."""
from .registry import get_stage, register, stage_names  # noqa: F401
from . import decode, encode, resize, fast_style, arbitrary_style, cyclegan, tv_denoise, temporal_smooth, gatys, variants  # noqa: F401,E402
