"""temporal_smooth: flow-guided blending of stylized video frames against flicker.

Each stylized frame P_t is pulled toward the previous *output* warped into
place by optical flow of the *input* frames (Ruder et al., "Artistic style
transfer for videos", GCPR 2016, used here as a post-process):

    O_t = P_t + strength * c_t * (warp_bicubic(O_{t-1}, flow_t) - P_t)

with c_t the per-pixel confidence of the flow (``pipeline.ops.flow``), and
O_t = P_t at the first frame and at scene cuts.  Flow and confidence depend
only on the inputs, so a ``Guider`` (``make_guider``) computes them on the CPU
in the decode thread; ``scan`` runs the blend on the device, on RGB frames, and
``scan_planes`` on the encoder's 4:2:0 planes (what the engine uses when this is
the last stage before a yuv420p encoder); on a CPU both go through
``pipeline.ops.smooth_host``.  A clip's state
across calls (``ClipState``: the guider, input side, and the previous output,
device side) is the stage's own: ``state_dict`` / ``load_state_dict`` save and
restore it at a commit, and the engine never looks inside.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Sequence

import cv2
import numpy as np

from ..media.video import Planes
from ..ops.flow import Guide, Guider
from ..ops.smooth_host import sample_map, smooth_step, weight_map
from ..typed_yaml import ParamError
from .base import Stage, join_alpha, split_alpha
from .registry import register

if TYPE_CHECKING:  # on a CPU, smoothing the encoder's planes needs no torch (scan_planes_host)
    import torch


@dataclass(frozen=True)
class TemporalSmoothParams:
    strength: float = 0.8          # 0..1: how far each frame is pulled to the warped previous output
    # (0, 1] of the stage's frames, or auto: 0.5 up to a short side of 270 px, that size above
    # (1080p flows at 480x270: a quarter of the cost of 0.5, see docs/video.md)
    flow_scale: float | Literal["auto"] = "auto"
    # OpenCV DIS preset; medium: E_warp 0.27 of per-frame in benchmarks/temporal.py vs 0.33 for
    # fast, at 4.4 ms instead of 2.0 per frame for both flows at 160x120 on one CPU core
    flow_preset: Literal["ultrafast", "fast", "medium"] = "medium"
    # the preset of the forward flow, which only the forward-backward check reads (see ops/flow.py)
    check_preset: Literal["ultrafast", "fast", "medium"] = "fast"
    photometric_sigma: float = 12.0  # 8-bit error at which confidence falls to 1/e
    consistency: float = 0.01      # forward-backward check: relative tolerance (fb_alpha)
    consistency_px: float = 2.0    # forward-backward check: absolute, flow-resolution px^2 (fb_beta)
    reset_below: float = 0.35      # mean confidence under which a frame starts a new shot
    boundary_radius: int = 4       # flow px around motion boundaries and missed objects not trusted (0: off)
    boundary_jump: float = 1.0     # flow spread (flow px) within that radius that halves trust, about

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ParamError("strength", f"strength must be in [0, 1], got {self.strength}")
        if self.flow_scale != "auto" and not 0.0 < self.flow_scale <= 1.0:
            raise ParamError("flow_scale", f"flow_scale must be in (0, 1] or auto, got {self.flow_scale}")
        if self.photometric_sigma <= 0:
            raise ParamError("photometric_sigma",
                             f"photometric_sigma must be > 0, got {self.photometric_sigma}")
        if self.consistency < 0:
            raise ParamError("consistency", f"consistency must be >= 0, got {self.consistency}")
        if self.consistency_px < 0:
            raise ParamError("consistency_px",
                             f"consistency_px must be >= 0, got {self.consistency_px}")
        if self.boundary_radius < 0:
            raise ParamError("boundary_radius", f"boundary_radius must be >= 0, got {self.boundary_radius}")
        if self.boundary_jump <= 0:
            raise ParamError("boundary_jump", f"boundary_jump must be > 0, got {self.boundary_jump}")
        if not 0.0 <= self.reset_below <= 1.0:
            raise ParamError("reset_below", f"reset_below must be in [0, 1], got {self.reset_below}")


@register
class TemporalSmooth(Stage):
    name = "temporal_smooth"
    kind = "temporal"  # the engine gives it video frames in order, with guides and state
    Params = TemporalSmoothParams
    video_only = True

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """A single image has no previous frame: identity."""
        return x

    def make_guider(self, frame_hw: tuple[int, int]) -> Guider:
        p = self.params
        return Guider(frame_hw, scale=p.flow_scale, preset=p.flow_preset, check_preset=p.check_preset,
                      photometric_sigma=p.photometric_sigma, fb_alpha=p.consistency,
                      fb_beta=p.consistency_px, reset_below=p.reset_below,
                      boundary_radius=p.boundary_radius, boundary_jump=p.boundary_jump)

    def clip_state(self, frame_hw: tuple[int, int], device: torch.device | None) -> ClipState:
        """A new clip's state, for frames of ``frame_hw`` as this stage receives them; device
        None: smoothed by ``scan_planes_host``, its state in host arrays."""
        return ClipState(self.make_guider(frame_hw), device)

    def scan(self, x: torch.Tensor, guides: Sequence[Guide],
             prev_out: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Smooth consecutive frames ``x`` [N, C, H, W] (0..255) of one clip, in order.

        ``guides``: one per frame; ``prev_out``: [3, H, W] float32, the previous
        output frame (None at a clip start: the first frame is then taken as
        is, whatever its guide says).  Returns (outputs in x's dtype, the last
        output as [3, H, W] float32 for the next call).  The blend runs in
        float32; alpha (C == 4) passes through.  Mutates neither input.
        """
        if x.dim() != 4 or x.shape[1] not in (3, 4):
            raise ValueError(f"temporal_smooth expects [N, 3, H, W], got {tuple(x.shape)}")
        n, _, h, w = x.shape
        _check(n, guides, prev_out, [(3, h, w)])
        if n == 0:
            return x.clone(), prev_out
        rgb, alpha = split_alpha(x)
        (y,), last = self._scan_layers([rgb], guides, None if prev_out is None else [prev_out])
        return join_alpha(y.to(x.dtype), alpha), last[0]

    def scan_planes(self, y: torch.Tensor, uv: torch.Tensor, guides: Sequence[Guide],
                    prev_out: tuple[torch.Tensor, torch.Tensor] | None
                    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """``scan`` on 4:2:0 frames: luma ``y`` [N, 1, H, W] and chroma ``uv`` [N, 2, ceil(H/2),
        ceil(W/2)], 0..255 (the encoder's planes, before rounding).

        The same blend, plane by plane, with the flow and confidence resized to each plane:
        the warp and the blend are linear, so they commute with the RGB->YCbCr matrix, and
        where the frames are encoded as 4:2:0 anyway the chroma the smoothing would compute
        at full size is averaged away.  Half the pixels of RGB, and no colour conversion
        around it.  ``prev_out``: the last output's (luma [1, H, W], chroma [2, h, w]) float32.
        Returns (luma, chroma, the last output's planes), float32, unrounded.
        """
        if y.dim() != 4 or y.shape[1] != 1 or uv.dim() != 4 or uv.shape[1] != 2:
            raise ValueError(f"temporal_smooth expects planes [N, 1, H, W] and [N, 2, h, w], got "
                             f"{tuple(y.shape)} and {tuple(uv.shape)}")
        n, _, h, w = y.shape
        if uv.shape[0] != n or tuple(uv.shape[-2:]) != ((h + 1) // 2, (w + 1) // 2):
            raise ValueError(f"chroma {tuple(uv.shape)} is not the 4:2:0 chroma of {tuple(y.shape)}")
        _check(n, guides, prev_out, [(1, h, w), tuple(uv.shape[1:])])
        if n == 0:
            return y.float(), uv.float(), prev_out
        (y, uv), last = self._scan_layers([y, uv], guides, None if prev_out is None else list(prev_out))
        return y, uv, (last[0], last[1])

    def scan_planes_host(self, frames: Sequence[Planes], guides: Sequence[Guide],
                         prev_out: tuple[np.ndarray, ...] | None
                         ) -> tuple[list[Planes], tuple[np.ndarray, ...] | None]:
        """``scan_planes`` where the device is the CPU and no other stage computes: decoded
        4:2:0 ``Planes`` in, the encoder's uint8 ``Planes`` out, through numpy and OpenCV alone
        (a job that only smooths never imports torch).  Y, U and V each a layer of its own
        (OpenCV's one-channel paths are its fast ones); ``prev_out``: the last output's planes,
        H x W x 1 float32 each.  The same bytes as ``scan_planes`` and the engine's rounding
        (``machine.host.to_uint8``: OpenCV's saturating cast)."""
        if not all(isinstance(f, Planes) for f in frames):
            raise ValueError("the clip's frames stopped coming as 8-bit 4:2:0 planes mid-stream "
                             "(its pixel format changed); convert it to one format first")
        if not frames:
            _check(0, guides, None, [])
            return [], prev_out
        layers = [[getattr(f, name)[..., None].astype(np.float32) for f in frames] for name in "yuv"]
        _check(len(frames), guides, prev_out, [layer[0].shape for layer in layers])
        outs, last = self._blend_host(layers, guides, None if prev_out is None else list(prev_out))
        return ([Planes(*(cv2.add(plane[..., 0], 0.0, dtype=cv2.CV_8U) for plane in planes))
                 for planes in zip(*outs)], tuple(last))

    def _scan_layers(self, layers: list[torch.Tensor], guides: Sequence[Guide],
                     prev: list[torch.Tensor] | None, host: bool | None = None
                     ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """O_t = P_t + strength c_t (warp(O_t-1) - P_t) on each layer (a [N, C, h, w] tensor
        of one frame size), float32.  Returns the outputs and the last output of each.
        On a CPU (``host``) through ``ops.smooth_host``, elsewhere through torch."""
        if host if host is not None else layers[0].device.type == "cpu":
            return self._scan_host(layers, guides, prev)
        import torch

        from ..ops.warp import blend_, warp

        guide_maps = {}
        for layer in layers:  # the flow and confidence at each size, once
            size = tuple(layer.shape[-2:])
            if size not in guide_maps:
                guide_maps[size] = _upload(guides, layer.device, size)
        strength = float(self.params.strength)
        prev = None if prev is None else [p.to(torch.float32) for p in prev]
        outs: list[list[torch.Tensor]] = [[] for _ in layers]
        for i, guide in enumerate(guides):
            new = []
            for k, layer in enumerate(layers):
                cur = layer[i].to(torch.float32)
                if prev is None or guide.reset or strength == 0.0:
                    out = cur.clone()
                else:
                    flow, conf = guide_maps[tuple(layer.shape[-2:])]
                    warped = warp(prev[k][None], flow[i:i + 1], mode="bicubic")[0]
                    out = blend_(cur, warped, conf[i], strength).clamp_(0.0, 255.0)
                outs[k].append(out)
                new.append(out)
            prev = new
        stacked = [o[0][None] if len(o) == 1 else torch.stack(o) for o in outs]  # one: no copy
        return stacked, prev

    def _scan_host(self, layers: list[torch.Tensor], guides: Sequence[Guide],
                   prev: list[torch.Tensor] | None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``_scan_layers`` on host memory (``_blend_host``); outputs are [N, C, h, w] views."""
        import torch

        frames = [[layer[i].to(torch.float32).permute(1, 2, 0).numpy() for i in range(len(layer))]
                  for layer in layers]
        outs, last = self._blend_host(frames, guides, None if prev is None else [_hwc(p) for p in prev])
        stacked = [torch.from_numpy(o[0][None] if len(o) == 1 else np.stack(o)).permute(0, 3, 1, 2)
                   for o in outs]
        return stacked, [torch.from_numpy(o).permute(2, 0, 1) for o in last]

    def _blend_host(self, layers: list[list[np.ndarray]], guides: Sequence[Guide],
                    last: list[np.ndarray] | None) -> tuple[list[list[np.ndarray]], list[np.ndarray]]:
        """The blend on each layer's frames (H x W x C float32 arrays; no torch operation: see
        ``ops.smooth_host``); ``last``: each layer's previous output, contiguous.  Returns the
        outputs and the last output of each layer."""
        strength = float(self.params.strength)
        outs: list[list[np.ndarray]] = [[] for _ in layers]
        for i, guide in enumerate(guides):
            maps: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
            new = []
            for k, frames in enumerate(layers):
                cur = frames[i]
                size = cur.shape[:2]
                if last is None or guide.reset or strength == 0.0:
                    out = np.array(cur, np.float32, order="C")
                else:
                    if size not in maps:
                        maps[size] = (sample_map(guide.flow, size),
                                      weight_map(guide.confidence, size, strength))
                    out = smooth_step(cur, last[k], *maps[size])
                outs[k].append(out)
                new.append(out)
            last = new
        return outs, last


def _hwc(x: torch.Tensor) -> np.ndarray:
    """[C, H, W] on the host -> contiguous H x W x C float32 (a view where it already is)."""
    return np.ascontiguousarray(x.float().permute(1, 2, 0).numpy())


def _check(n: int, guides: Sequence[Guide], prev_out, shapes: list[tuple[int, ...]]) -> None:
    if len(guides) != n:
        raise ValueError(f"temporal_smooth got {n} frames but {len(guides)} guides")
    if prev_out is None:
        return
    given = list(prev_out) if isinstance(prev_out, (tuple, list)) else [prev_out]
    if [tuple(p.shape) for p in given] != shapes:
        raise ValueError(f"prev_out has shape {[tuple(p.shape) for p in given]}, expected {shapes}: "
                         "the frame size changed within a clip")


class ClipState:
    """One clip's smoothing state.  The input side (``guider``) advances in the decode thread,
    ahead of the device; the output side (``prev_out``) on the device: the last output frame,
    [3, H, W] RGB, or its (luma, chroma) where the clip is smoothed as 4:2:0 planes; with no
    device (``scan_planes_host``) its Y, U and V planes as host arrays, H x W x 1.  So a saved
    state pairs the device's ``prev_out`` with the guider's state as it was after the same frame
    (``input_state``, taken in the decode thread when that frame's batch was cut).  Saved
    planes are [C, H, W] float32 either way: a clip resumes on the host or on a device."""

    def __init__(self, guider: Guider, device: torch.device | None) -> None:
        self.guider = guider
        self.device = device
        self.prev_out: torch.Tensor | tuple | None = None

    def state_dict(self, input_state: np.ndarray | None) -> dict[str, np.ndarray] | None:
        """What a resumed clip needs after the frame ``input_state`` was taken at (None before
        the first output)."""
        if self.prev_out is None:
            return None
        if not isinstance(self.prev_out, tuple):
            return {"prev_out": _host(self.prev_out), "prev_input": input_state}
        if self.device is None:  # Y, U, V planes, H x W x 1 each
            y, u, v = self.prev_out
            luma, chroma = np.ascontiguousarray(y.transpose(2, 0, 1)), np.stack([u[..., 0], v[..., 0]])
        else:
            luma, chroma = (_host(p) for p in self.prev_out)
        return {"prev_luma": luma, "prev_chroma": chroma, "prev_input": input_state}

    def load_state_dict(self, state: dict[str, np.ndarray] | None) -> None:
        """Continue after a saved state (None: from a clip's start)."""
        self.guider.restore(None if state is None else state["prev_input"])
        if state is None:
            self.prev_out = None
        elif self.device is None:  # smoothed on the host: Y, U, V planes, H x W x 1 each
            luma, chroma = (state[k].astype(np.float32) for k in ("prev_luma", "prev_chroma"))
            self.prev_out = tuple(np.ascontiguousarray(p[..., None]) for p in (luma[0], *chroma))
        else:
            import torch

            if "prev_out" in state:
                self.prev_out = torch.from_numpy(state["prev_out"]).to(self.device)
            else:
                self.prev_out = (torch.from_numpy(state["prev_luma"]).to(self.device),
                                 torch.from_numpy(state["prev_chroma"]).to(self.device))


def _host(x: torch.Tensor) -> np.ndarray:
    return x.float().cpu().contiguous().numpy()


def _upload(guides: Sequence[Guide], device: torch.device,
            size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Flow [N, 2, H, W] and confidence [N, 1, H, W], float32 on ``device``."""
    import torch

    from ..ops.warp import resize_flow, resize_plane

    flow = torch.from_numpy(np.stack([g.flow for g in guides])).permute(0, 3, 1, 2)
    conf = torch.from_numpy(np.stack([g.confidence for g in guides]))[:, None]
    if device.type == "cuda":
        flow, conf = flow.pin_memory(), conf.pin_memory()
    flow = flow.to(device, torch.float32, non_blocking=True)
    conf = conf.to(device, torch.float32, non_blocking=True)
    return resize_flow(flow, size), resize_plane(conf, size).clamp_(0.0, 1.0)
