"""The job file: the documented shape parses; every mistake is located and explained."""
from __future__ import annotations

import signal
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipeline.job.config import load_job
from pipeline.errors import JobError
from tests.conftest import write_job

FULL = """
name: portraits            # optional, defaults to the file's stem
sources:
  - images: photos/        # a file, a folder (recursive) or a glob
output: out/portraits
device: auto
precision: auto
batch_size: auto
stages:
  - decode
  - resize: {short_side: 512}
  - tv_denoise: {weight: 0.05}
  - encode: {image: {format: png}}
"""


def test_documented_shape_parses_into_frozen_dataclasses(tmp_path: Path) -> None:
    job = load_job(write_job(tmp_path, FULL))
    assert job.name == "portraits"
    assert job.output == (tmp_path / "out/portraits").resolve()
    assert job.sources[0].path == tmp_path / "photos/"
    assert [s.name for s in job.stages] == ["decode", "resize", "tv_denoise", "encode"]
    assert job.stages[1].params.short_side == 512 and job.stages[1].params.multiple_of == 4
    assert job.stages[3].params.image.format == "png"
    assert job.batch_size is None and job.device == "auto" and job.precision == "auto"
    with pytest.raises(AttributeError):
        job.stages[1].params.short_side = 3  # frozen


def test_name_defaults_to_stem_and_io_stages_are_added(tmp_path: Path) -> None:
    job = load_job(write_job(tmp_path, """
        sources: [{images: a.png}]
        output: out
        batch_size: 3
        stages: [{tv_denoise: {weight: 0.1}}]
        """, name="my_job.yaml"))
    assert job.name == "my_job" and job.batch_size == 3
    assert [s.name for s in job.stages] == ["decode", "tv_denoise", "encode"]


def _error(tmp_path: Path, body: str) -> str:
    with pytest.raises(JobError) as info:
        load_job(write_job(tmp_path, body))
    return str(info.value)


def test_unknown_stage_key_has_location_stage_and_suggestion(tmp_path: Path) -> None:
    msg = _error(tmp_path, """
        sources: [{images: a.png}]
        output: out
        stages:
          - decode
          - resize: {short_sid: 512}
        """)
    assert f"{tmp_path / 'job.yaml'}:5:14:" in msg
    assert "stages[1] (resize)" in msg
    assert "unknown key 'short_sid'" in msg and "did you mean 'short_side'?" in msg
    assert "valid keys: short_side, long_side" in msg


def test_misspelled_stage_lists_known_stages(tmp_path: Path) -> None:
    msg = _error(tmp_path, """
        sources: [{images: a.png}]
        output: out
        stages:
          - decode
          - fast_stlye: {weights: x.pth}
        """)
    assert ":5:5:" in msg and "unknown stage 'fast_stlye'" in msg
    assert "did you mean 'fast_style'?" in msg and "known stages:" in msg and "cyclegan" in msg


def test_wrong_type_says_what_was_expected(tmp_path: Path) -> None:
    msg = _error(tmp_path, """
        sources: [{images: a.png}]
        output: out
        stages:
          - resize: {short_side: big}
        """)
    assert ":4:26:" in msg and "stages[0] (resize).short_side" in msg
    assert "expected an integer or nothing" not in msg  # None is optional, not advertised
    assert "expected an integer, got 'big' (a string)" in msg


def test_bad_literal_and_nested_key(tmp_path: Path) -> None:
    msg = _error(tmp_path, """
        sources: [{images: a.png}]
        output: out
        stages:
          - encode: {image: {format: jpeg}}
        """)
    assert "stages[0] (encode).image.format" in msg
    assert "expected one of same, png, jpg, webp, bmp, tiff" in msg and "did you mean 'jpg'?" in msg


def test_semantic_errors_point_at_the_field(tmp_path: Path) -> None:
    msg = _error(tmp_path, """
        sources: [{images: a.png}]
        output: out
        stages:
          - resize: {short_side: 10, long_side: 20}
        """)
    assert "exactly one of short_side, long_side" in msg and ":4:13:" in msg
    msg = _error(tmp_path, """
        sources: [{images: a.png}]
        output: out
        stages:
          - encode: {image: {format: jpg, quality: 150}}
        """)
    assert "quality must be between 1 and 100" in msg and ":4:35:" in msg


@pytest.mark.parametrize("body, expected", [
    ("sources: [{images: a.png}]\noutput: out\nstages: [decode]\nbatchsize: 4\n",
     ["4:1", "unknown key 'batchsize'", "did you mean 'batch_size'?"]),
    ("sources: [{images: a.png}]\nstages: [decode]\n", ["missing required key 'output'"]),
    ("sources: [{images: a.png}]\noutput: out\nstages: [decode]\ndevice: gpu\n",
     ["4:9", "device", "'gpu' (a string) is not valid; expected auto, cpu, cuda or cuda:N"]),
    ("sources: [{images: a.png}]\noutput: out\nstages: [decode]\nprecision: half\n",
     ["precision", "expected one of auto, fp32, fp16, bf16"]),
    ("sources: [{images: a.png}]\noutput: out\nstages: [decode]\nbatch_size: 0\n",
     ["batch_size", "expected 'auto' or a positive integer"]),
    ("sources: [{image: a.png}]\noutput: out\nstages: [decode]\n",
     ["sources[0]", "unknown key 'image'", "did you mean 'images'?"]),
    ("sources: [{images: a.png}]\noutput: out\nstages: [decode]\noutput: again\n",
     ["4:1", "duplicate key 'output'"]),
    ("sources: [{images: a.png}]\noutput: out\nstages: [decode, {resize: {scale: 2}}, decode]\n",
     ["decode must be the first stage"]),
    ("sources: [{images: a.png}\noutput: out\n", ["invalid YAML"]),
    ("", ["the job file is empty"]),
])
def test_top_level_errors(tmp_path: Path, body: str, expected: list[str]) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(body)
    with pytest.raises(JobError) as info:
        load_job(path)
    for part in expected:
        assert part in str(info.value)
    assert str(path) in str(info.value)


def test_missing_job_file(tmp_path: Path) -> None:
    with pytest.raises(JobError, match="does not exist"):
        load_job(tmp_path / "nope.yaml")


# --- hostile input: the loader's work is bounded and every refusal is located -------

def _billion_laughs(levels: int = 9) -> str:
    """The classic alias bomb: 9 levels of 9 aliases stand for 9**9 strings."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"[:levels - 1]):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    return "sources: [{images: a.png}]\noutput: out\nstages: [decode]\n" + "\n".join(lines) + "\n"


@contextmanager
def _deadline(seconds: float):
    """Fail instead of hanging: before the fix the bomb never finished."""
    def expire(*_):
        raise TimeoutError(f"still loading after {seconds} s")
    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_alias_bomb_is_refused_fast_and_located(tmp_path: Path) -> None:
    path = write_job(tmp_path, _billion_laughs())
    assert path.stat().st_size < 600
    start = time.perf_counter()
    with _deadline(5), pytest.raises(JobError) as info:
        load_job(path)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"refusing the bomb took {elapsed:.2f} s"
    msg = str(info.value)
    # Level f holds 9 * 9**5 > 100,000 values: refused at its second alias.
    assert msg.startswith(f"{path}:9:12: too many values after expanding aliases")
    assert "alias bomb" in msg


def test_recursive_alias_is_refused_at_the_alias(tmp_path: Path) -> None:
    msg = _error(tmp_path, """
        sources: &s [{images: a.png}, *s]
        output: out
        stages: [decode]
        """)
    assert f"{tmp_path / 'job.yaml'}:1:31:" in msg and "alias '*s' is inside the value" in msg


def test_absurd_nesting_is_refused(tmp_path: Path) -> None:
    msg = _error(tmp_path, "sources: " + "[" * 5000 + "]" * 5000 + "\n")
    assert f"{tmp_path / 'job.yaml'}:1:" in msg and "nested more than 50 deep" in msg


def test_huge_job_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("sources: [{images: a.png}]\noutput: out\nstages: [decode]\n# "
                    + "x" * (11 << 20) + "\n")
    start = time.perf_counter()
    with pytest.raises(JobError) as info:
        load_job(path)
    assert time.perf_counter() - start < 1.0
    msg = str(info.value)
    assert f"job file {path} is 11.0 MiB" in msg and "did you point at a data file" in msg


def test_anchors_and_aliases_still_work(tmp_path: Path) -> None:
    job = load_job(write_job(tmp_path, """
        sources: [{images: a.png}]
        output: out
        stages:
          - tv_denoise: &smooth {weight: 0.05}
          - resize: {short_side: 64}
          - tv_denoise: *smooth
        """))
    assert [s.name for s in job.stages] == ["decode", "tv_denoise", "resize", "tv_denoise", "encode"]
    assert job.stages[1].params == job.stages[3].params and job.stages[3].params.weight == 0.05


def test_every_mistake_is_reported_at_once(tmp_path: Path) -> None:
    """Three mistakes in three places: all three in one run, in file order, each located."""
    from pipeline.errors import JobErrors

    job = tmp_path / "job.yaml"
    job.write_text(textwrap.dedent("""\
        sources:
          - images: photos/
            intoo: x
        output: out
        device: gpu
        stages:
          - resize: {short_sid: 512}
          - tv_denoise: {weight: strong}
        """))
    with pytest.raises(JobErrors) as caught:
        load_job(job)
    text = str(caught.value)
    assert text.startswith("4 mistakes in the job:")
    assert [e.location.line for e in caught.value.errors] == [3, 5, 7, 8]
    assert "unknown key 'intoo'; did you mean 'into'?" in text
    assert "'gpu' (a string) is not valid" in text and "short_sid" in text and "'strong'" in text


def test_every_mistake_through_validate(tmp_path: Path) -> None:
    from tests.conftest import run_cli_here

    (tmp_path / "photos").mkdir()
    job = tmp_path / "job.yaml"
    job.write_text("sources: [{images: photos/}]\noutput: out\nworkers: 0\nprecision: fp8\n"
                   "stages: [{fast_style: {weights: nowhere.pth}}, {resize: {scale: -1}}]\n")
    result = run_cli_here("validate", str(job))
    assert result.returncode == 2
    assert result.stderr.startswith("error: 3 mistakes in the job:"), result.stderr
    assert "job.yaml:3:10: workers:" in result.stderr and "job.yaml:4:12: precision:" in result.stderr


def test_config_weights_sources_and_output_mistakes_come_in_one_pass(tmp_path: Path) -> None:
    """Issue 29 item 3: four mistakes gave three, then the output on the next pass, and two
    missing sources came one per pass."""
    from tests.conftest import run_cli_here

    (tmp_path / "outfile").write_text("a file where the output folder should go")
    job = tmp_path / "job.yaml"
    job.write_text(textwrap.dedent("""\
        sources:
          - images: missing_a/
          - images: missing_b/
        output: outfile
        batch_sise: 4
        stages:
          - decode
          - fast_style: {weights: nope.pth}
          - encode
        """))
    result = run_cli_here("validate", str(job))
    assert result.returncode == 2
    assert result.stderr.startswith("error: 5 mistakes in the job:"), result.stderr
    lines = result.stderr.splitlines()[1:]
    assert [line.split(":")[1] for line in lines] == ["2", "3", "4", "5", "8"], lines
    assert "'missing_a/' does not exist" in lines[0] and "'missing_b/' does not exist" in lines[1]
    assert "is a file, not a folder" in lines[2] and "unknown key 'batch_sise'" in lines[3]
    assert "nope.pth: weights file not found" in lines[4]


def test_a_missing_source_names_the_command_the_jobs_comments_give_for_it(tmp_path: Path) -> None:
    """jobs/augment_dataset.yaml fails before scripts/make_augment_dataset.py has run: say so."""
    import shutil

    from tests.conftest import REPO, run_cli_here

    (tmp_path / "jobs").mkdir()
    job = shutil.copy(REPO / "jobs" / "augment_dataset.yaml", tmp_path / "jobs")
    result = run_cli_here("validate", str(job))
    assert result.returncode == 2
    told = [line for line in result.stderr.splitlines() if " sources: " in line]
    assert len(told) == 2, result.stderr  # the folder and the shards in it
    assert all("run `python scripts/make_augment_dataset.py` first" in line for line in told), told
    # a stage's missing folder too: style_augment's paintings, which another script draws
    styled = shutil.copy(REPO / "jobs" / "style_augment.yaml", tmp_path / "jobs")
    result = run_cli_here("validate", str(styled))
    paintings = [line for line in result.stderr.splitlines() if "(style_augment)" in line]
    assert len(paintings) == 1 and "run `python scripts/make_procedural_styles.py jobs/augment_paintings" \
        in paintings[0], result.stderr
    (tmp_path / "jobs" / "other.yaml").write_text("sources: [{images: nowhere/}]\noutput: out\n"
                                                  "stages: [decode, encode]\n")
    plain = run_cli_here("validate", str(tmp_path / "jobs" / "other.yaml"))
    assert plain.returncode == 2 and "comments say" not in plain.stderr
