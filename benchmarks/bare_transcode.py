"""(a) of ``render_box.py``: a bare PyAV transcode, in a process that imports PyAV alone.

    python benchmarks/bare_transcode.py CLIP OUT [--crf 18] [--preset medium]
                                        [--encoder-threads 2] [--decode-threads 0]

Decode, then libx264 at the given crf, preset and threads, audio packets copied: what
``ffmpeg -i CLIP -c:v libx264 -preset P -crf C -threads T -c:a copy OUT`` does, with no
colour conversion and no copies.  Prints the frames transcoded.  The yardstick the
pipeline's own runs are measured against, so it starts as light as ffmpeg would.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import av


def bare_transcode(clip: Path, out: Path, args) -> int:
    """Frames transcoded: decode -> libx264, audio copied, nothing else."""
    with av.open(str(clip)) as inp, av.open(str(out), "w") as dst:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        vin.codec_context.thread_count = args.decode_threads
        vout = dst.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = vin.width, vin.height, "yuv420p"
        vout.time_base = vin.time_base
        vout.codec_context.thread_count = args.encoder_threads
        vout.options = {"crf": str(args.crf), "preset": args.preset}
        ain = inp.streams.audio[0] if inp.streams.audio else None
        aout = dst.add_stream_from_template(ain) if ain is not None else None
        frames = 0
        for packet in inp.demux(*([vin] + ([ain] if ain is not None else []))):
            if packet.stream is vin:
                for frame in packet.decode():
                    frame.pict_type = 0  # let the encoder choose, as ffmpeg does
                    dst.mux(vout.encode(frame))
                    frames += 1
            elif packet.dts is not None:
                packet.stream = aout
                dst.mux(packet)
        dst.mux(vout.encode(None))
    return frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clip", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--crf", type=int, default=18)
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--encoder-threads", type=int, default=2)
    ap.add_argument("--decode-threads", type=int, default=0, help="0: FFmpeg's choice")
    args = ap.parse_args()
    print(bare_transcode(args.clip, args.out, args))


if __name__ == "__main__":
    main()
