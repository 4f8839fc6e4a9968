"""validate --estimate: a rough device time from a few timed frames, scaled to every unit."""
from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import make_photos, run_cli_here, write_job


def test_estimate_scales_the_timed_frame_to_every_units_pixels(tmp_path: Path,
                                                               style_weights: Path) -> None:
    from pipeline.job.build import prepare
    from pipeline.job.estimate import estimate

    make_photos(tmp_path / "photos", 3, size=(24, 32))
    make_photos(tmp_path / "photos" / "big", 1, size=(48, 64), seed=7)
    job = write_job(tmp_path, f"""
        sources: [{{images: photos/}}]
        output: out
        stages: [{{fast_style: {{weights: {style_weights}}}}}]
        """)
    e = estimate(prepare(job))
    assert e.pixels == 3 * 24 * 32 + 48 * 64
    assert e.seconds > 0 and abs(e.seconds - e.per_megapixel * e.pixels / 1e6) < 1e-9
    result = run_cli_here("validate", str(job), "--estimate")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("estimate"))
    assert re.search(r"about \d+ s of device work on cpu for 0\.0 Mpx \([\d.e+-]+ s per Mpx, "
                     r"timed on img000\.png at 64x48\)", line), line
