"""Our errors are also the builtin they resemble (as PyAV's are), carry the file name, and
survive pickling (a Ray actor's error reaches the driver whole)."""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from pipeline.errors import JobError, MediaError, WeightsError
from pipeline.media.images import read_image
from pipeline.models.checkpoints import load_fast_style
from pipeline.train.data import scan_images


def test_missing_files_are_file_not_found_errors(tmp_path: Path) -> None:
    cases = [(lambda: read_image(tmp_path / "gone.png"), MediaError),
             (lambda: load_fast_style(tmp_path / "gone.pth"), WeightsError),
             (lambda: scan_images(tmp_path / "no_folder"), MediaError)]
    for call, ours in cases:
        with pytest.raises(FileNotFoundError) as info:
            call()
        assert isinstance(info.value, ours) and isinstance(info.value, ValueError)
        assert info.value.errno == 2 and info.value.filename.startswith(str(tmp_path))
        assert "not found" in str(info.value)


def test_unreadable_files_are_permission_errors(tmp_path: Path, monkeypatch) -> None:
    image = tmp_path / "locked.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")

    def denied(self):  # chmod 0 means nothing to root, who runs CI: the OS error, injected
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(PermissionError) as info:
        read_image(image)
    assert isinstance(info.value, MediaError) and info.value.filename == str(image)


def test_errors_survive_pickling(tmp_path: Path) -> None:
    with pytest.raises(MediaError) as info:
        read_image(tmp_path / "gone.png")
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is type(info.value) and str(again) == str(info.value)
    assert isinstance(again, FileNotFoundError) and again.errno == 2
    weights = pickle.loads(pickle.dumps(WeightsError(tmp_path / "w.pth", "wrong family", hint="x")))
    assert str(weights).endswith("w.pth: wrong family; x")
    job = JobError("bad key", where="stages[1]", hint="remove it")
    assert isinstance(job, ValueError)
