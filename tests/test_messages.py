"""Messages a person can act on: paths shown normalized, no raw errno numbers."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import JobError, Location, MediaError, WeightsError, os_reason
from pipeline.media.video import probe_video


def test_paths_are_shown_normalized_and_kept_as_given():
    given = Path("jobs/../clips/./x.mp4")
    media = MediaError(given, "bad", stage="decode")
    weights = WeightsError("weights/../w/a.pth", "bad")
    job = JobError("bad", location=Location(Path("a/../jobs/j.yaml"), 3, 5))
    assert str(media) == "clips/x.mp4 (decode): bad"
    assert str(weights) == "w/a.pth: bad"
    assert str(job) == "jobs/j.yaml:3:5: bad"
    assert media.path == given and weights.path == Path("weights/../w/a.pth")


def test_os_reason_drops_the_errno_number():
    assert os_reason(OSError(28, "No space left on device", "/out/x.mp4")) == "No space left on device"
    assert os_reason(ValueError("plain")) == "plain"


def test_a_file_pyav_cannot_open_has_no_errno_in_its_message(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("hello, not a video\n" * 20)
    with pytest.raises(MediaError) as err:
        probe_video(path)
    assert "[Errno" not in str(err.value) and "Invalid data found" in str(err.value)
    assert str(path) not in err.value.reason  # the path is shown once, in front
