"""Issue 28, the second hostile campaign: each reproduction of its defects, failing on the
code before the fix.  The job's own files (ledger, lock, manifests, segments, temporary
names) are never outputs and a file named as a source is checked as the walk checks what it
finds (item 1); members that only claim a size or lead out of the archive are never read
(items 2, 11); names that are not UTF-8, hold a carriage return or start a formula (3, 10);
absurd integers and control characters (6); long names (9); a member named twice (12);
links outside the source's folder (7).  Located errors come at ``validate``, before any work."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from pipeline.errors import JobError
from pipeline.job.build import prepare
from tests.conftest import make_photos, natural_image, write_job


def _add_png(tar: tarfile.TarFile, name: str, side: int = 16, seed: int = 0) -> None:
    """A small PNG member named ``name`` (any name: '..', absolute, twice)."""
    buf = io.BytesIO()
    Image.fromarray(natural_image(side, side, seed)).save(buf, "PNG")
    info = tarfile.TarInfo(name)
    info.size = len(buf.getvalue())
    tar.addfile(info, io.BytesIO(buf.getvalue()))


def _tar(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        _add_png(tar, "s1.png")
    return path


def _refused(tmp_path: Path, body: str, match: str) -> JobError:
    job = write_job(tmp_path, body)
    with pytest.raises(JobError, match=match) as err:
        prepare(job)
    assert str(err.value).startswith(str(job)), "located at the job file"
    return err.value


@pytest.mark.parametrize("name", [".ledger.jsonl", ".ledger.lock"])
def test_a_shard_named_like_the_ledger_or_its_lock_is_refused(tmp_path, name) -> None:
    _tar(tmp_path / "s" / name)
    err = _refused(tmp_path, f"""
sources: [{{shards: "s/{name}"}}]
output: out
stages: [decode, encode]
""", "names a hidden file")
    assert "job.yaml:1:" in str(err)


def test_a_file_named_as_a_source_must_be_of_its_kind(tmp_path) -> None:
    _tar(tmp_path / "s" / "manifest.jsonl")  # a tar named like the manifest
    _refused(tmp_path, """
sources: [{shards: s/manifest.jsonl}]
output: out
stages: [decode, encode]
""", r"is not a file a 'shards' source reads \(it takes .tar\)")
    _tar(tmp_path / "t" / "train-000000.tar")
    _tar(tmp_path / "t" / ".ledger.jsonl")
    _refused(tmp_path, """
sources: [{shards: "t/{train-000000.tar,.ledger.jsonl}"}]
output: out
stages: [decode, encode]
""", "names a hidden file")  # named in a brace list: the same checks


@pytest.mark.parametrize("sidecar", ["manifest.jsonl", "manifest.csv"])
def test_a_sidecar_named_like_the_manifest_is_refused(tmp_path, sidecar) -> None:
    make_photos(tmp_path / "data", 1)
    (tmp_path / "data" / sidecar).write_text("the user's own file\n")
    _refused(tmp_path, """
sources:
  - images: data/
    sidecars: ["*.jsonl", "*.csv"]
output: out
manifest: {csv: true}
stages: [decode, encode]
""", f"would be '{sidecar}': '{sidecar}' at the top of the output folder is the job's own")


@pytest.mark.parametrize("into", [".segments/tiny.mp4", "manifest.jsonl", ".ledger.jsonl",
                                  ".ledger.lock", "a/.x.png.partial"])
def test_into_the_jobs_own_names_is_refused(tmp_path, into) -> None:
    make_photos(tmp_path / "data", 1)
    err = _refused(tmp_path, f"""
sources:
  - images: data/
    into: "{into}"
output: out
stages: [decode, encode]
""", "would put outputs on the job's own files")
    assert "job.yaml:3:11" in str(err)  # at the value of 'into'


@pytest.mark.parametrize("variant", ["manifest.jsonl", "manifest.csv", "bad\u0000name", "tab\tname"])
def test_a_variant_named_like_the_jobs_files_or_with_control_characters_is_refused(tmp_path, variant) -> None:
    make_photos(tmp_path / "data", 1)
    import json
    err = _refused(tmp_path, f"""
sources: [{{images: data/}}]
output: out
stages:
  - decode
  - variants:
      {json.dumps(variant)}: []
  - encode
""", "is not a folder name of its own")
    assert "job.yaml:6:7:" in str(err)  # at the branch's name


def test_outputs_beside_a_clip_keep_off_its_segments_and_the_ledger_stays_whole(tmp_path) -> None:
    """The plain case still runs: a tar named for what it is, images into a plain folder."""
    from tests.conftest import run_cli_here

    _tar(tmp_path / "s" / "train.tar")
    make_photos(tmp_path / "data", 2)
    job = write_job(tmp_path, """
sources:
  - shards: s/train.tar
  - images: data/
    into: segments
output: out
manifest: {csv: true}
stages: [decode, encode]
""")
    done = run_cli_here(str(job))
    assert done.returncode == 0, done.stderr
    ledger = (tmp_path / "out" / ".ledger.jsonl").read_text()
    assert ledger.startswith("{") and '"fingerprint"' in ledger.splitlines()[0]
    assert (tmp_path / "out" / "manifest.jsonl").read_text().count("\n") == 3


@pytest.mark.parametrize("digits", [30, 5000])
def test_an_absurd_integer_is_a_located_error(tmp_path, digits) -> None:
    """Item 6: an integer of 5,000 digits raised ValueError from the YAML loader; one of 30
    went through to the stage.  Both are located errors now."""
    make_photos(tmp_path / "data", 1)
    err = _refused(tmp_path, f"""
sources: [{{images: data/}}]
output: out
stages:
  - decode
  - resize: {{short_side: {"9" * digits}}}
  - encode
""", "is out of range|is not a number this job can use")
    assert "job.yaml:5:" in str(err)


def test_manifest_csv_quotes_carriage_returns_and_neutralizes_formulas(tmp_path) -> None:
    """Item 10: a name holding '\\r' split its CSV row; one starting with '=' ran as a formula
    in a spreadsheet.  The CSV quotes every text cell and prefixes such names with an
    apostrophe (OWASP); the JSON lines keep every name as it is."""
    import csv
    import json

    from tests.conftest import run_cli_here

    (tmp_path / "data").mkdir()
    for name in ("=HYPERLINK(1).png", "a\rb.png", "+1.png", "plain.png"):
        Image.fromarray(natural_image(8, 8, 0)).save(tmp_path / "data" / name)
    job = write_job(tmp_path, """
sources: [{images: data/}]
output: out
manifest: {csv: true}
stages: [decode, encode]
""")
    assert run_cli_here(str(job)).returncode == 0
    with open(tmp_path / "out" / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["output"] for r in rows) == ["'+1.png", "'=HYPERLINK(1).png", "a\rb.png", "plain.png"]
    lines = (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["output"] for line in lines) == \
        ["+1.png", "=HYPERLINK(1).png", "a\rb.png", "plain.png"]


def test_a_member_named_twice_in_a_sample_is_named_as_such(tmp_path) -> None:
    """Item 12: a sample holding one member name twice was dropped with the unrelated hint
    "keep the images' format"; the failure now names the duplicate."""
    from tests.conftest import run_cli_here

    path = tmp_path / "s" / "train.tar"
    path.parent.mkdir()
    with tarfile.open(path, "w") as tar:
        for key in ("a", "a", "b"):  # sample a: a.png twice
            _add_png(tar, f"{key}.png", 8, 1)
    job = write_job(tmp_path, """
sources: [{shards: s/train.tar}]
output: out
stages: [decode, encode]
""")
    done = run_cli_here(str(job))
    assert "holds the member 'a.png' twice" in done.stderr, done.stderr
    assert "keep the images' format" not in done.stderr


@pytest.mark.parametrize("length", [247, 251, 255])
def test_names_near_the_file_system_limit_are_written(tmp_path, length) -> None:
    """Item 9: a name of 247 to 255 bytes failed with ENAMETOOLONG on every run: its temporary
    name added 9 bytes.  A long name's temporary is a short hash; the output keeps its name."""
    from pipeline.media.atomic import partial_name, partial_of, temporary_base
    from tests.conftest import run_cli_here

    name = "a" * (length - 4) + ".png"
    (tmp_path / "data").mkdir()
    Image.fromarray(natural_image(8, 8, 0)).save(tmp_path / "data" / name)
    job = write_job(tmp_path, """
sources: [{images: data/}]
output: out
stages: [decode, encode]
""")
    done = run_cli_here(str(job))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / name).is_file()
    tmp = partial_name(tmp_path / "out" / name, "w12")
    assert len(tmp.name) <= 255 and partial_of(tmp.name) == temporary_base(name) != name
    assert partial_of(partial_name(Path("short.png")).name) == "short.png"  # short names as before


def test_a_long_names_temporary_file_is_swept_like_any(tmp_path) -> None:
    from pipeline.media.atomic import partial_name
    from pipeline.record.output_folder import sweep_partials

    name = "b" * 250 + ".png"
    (tmp_path / "sub").mkdir()
    left = partial_name(tmp_path / "sub" / name, "w3")  # what a killed writer left behind
    left.write_bytes(b"half")
    other = partial_name(tmp_path / "sub" / "other.png")
    other.write_bytes(b"not this job's key")
    sweep_partials(tmp_path, [f"sub/{name}"])
    assert not left.exists() and other.exists()


def test_a_sparse_member_is_refused_unread_and_its_sample_named(tmp_path) -> None:
    """Item 2: a 15 KB shard holding a GNU sparse member that declares 1 GiB gave a 1 GiB
    output tar and GBs of memory.  Such a member (or one declaring more than the limit) is
    never read: its sample is left out and named, validate says so, the rest is written."""
    import shutil
    import subprocess

    from tests.conftest import run_cli_here

    if shutil.which("tar") is None:
        pytest.skip("needs GNU tar to write a sparse member")
    data = tmp_path / "members"
    data.mkdir()
    Image.fromarray(natural_image(8, 8, 2)).save(data / "good.png")
    with open(data / "big.bin", "wb") as f:
        f.truncate(1 << 30)  # 1 GiB of holes: nothing on disk
    shard = tmp_path / "s" / "train.tar"
    shard.parent.mkdir()
    subprocess.run(["tar", "--sparse", "--format=gnu", "-cf", str(shard), "-C", str(data),
                    "good.png", "big.bin"], check=True)
    assert shard.stat().st_size < 100_000
    job = write_job(tmp_path, """
sources: [{shards: s/train.tar}]
output: out
stages: [decode, encode]
""")
    checked = run_cli_here("validate", str(job))
    assert "1 refused unread" in checked.stdout and "big.bin" in checked.stdout, checked.stdout
    done = run_cli_here(str(job))
    assert done.returncode == 1 and "sparse member declaring 1,073,741,824 bytes" in done.stderr
    out = tmp_path / "out" / "train.tar"
    assert out.stat().st_size < 100_000
    with tarfile.open(out) as tar:
        assert tar.getnames() == ["good.png"]


def test_a_member_over_the_limit_is_refused(tmp_path, monkeypatch) -> None:
    from tests.conftest import run_cli_here

    shard = _tar(tmp_path / "s" / "train.tar")  # one 16x16 PNG of a few hundred bytes
    monkeypatch.setenv("STYLIZE_MAX_MEMBER_BYTES", "100")
    job = write_job(tmp_path, """
sources: [{shards: s/train.tar}]
output: out
stages: [decode, encode]
""")
    done = run_cli_here(str(job))
    assert "over the limit of 100" in done.stderr and "s1.png" in done.stderr, done.stderr
    assert shard.is_file()


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink_out", "hardlink_out"])
def test_members_leading_out_of_the_archive_are_refused(tmp_path, kind) -> None:
    """Item 11: '../x.png', absolute names and links out of the archive were copied into the
    output tar as they were (a downstream ``extractall`` would act on them).  Their samples
    are left out, named; the rest of the shard is written."""
    from tests.conftest import run_cli_here

    shard = tmp_path / "s" / "train.tar"
    shard.parent.mkdir()
    with tarfile.open(shard, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_png(tar, "good.png", 8, 3)
        if kind in ("dotdot", "absolute"):
            _add_png(tar, "../evil.png" if kind == "dotdot" else "/tmp/evil.png", 8, 3)
        else:
            bad = tarfile.TarInfo("evil.txt")
            bad.type = tarfile.SYMTYPE if kind == "symlink_out" else tarfile.LNKTYPE
            bad.linkname = "../../etc/passwd" if kind == "symlink_out" else "/etc/passwd"
            tar.addfile(bad)
    job = write_job(tmp_path, """
sources: [{shards: s/train.tar}]
output: out
stages: [decode, encode]
""")
    done = run_cli_here(str(job))
    assert done.returncode == 1 and ("leads out of the archive" in done.stderr
                                     or "outside the archive" in done.stderr), done.stderr
    with tarfile.open(tmp_path / "out" / "train.tar") as tar:
        assert tar.getnames() == ["good.png"]


def test_a_name_that_is_not_utf8_is_written_faithfully_in_both_manifests(tmp_path) -> None:
    """Item 3: such a name crashed the run with manifest: {csv: true} (UnicodeEncodeError)
    and reached the JSON lines as lone surrogates.  Its undecodable bytes are written as
    \\xNN in both; the output keeps the name's bytes."""
    import csv
    import json
    import os

    from tests.conftest import run_cli_here

    (tmp_path / "data").mkdir()
    name = os.fsdecode(b"caf\xe9.png")  # Latin-1, not UTF-8
    Image.fromarray(natural_image(8, 8, 0)).save(tmp_path / "data" / name)
    job = write_job(tmp_path, """
sources: [{images: data/}]
output: out
manifest: {csv: true}
stages: [decode, encode]
""")
    done = run_cli_here(str(job))
    assert done.returncode == 0, done.stderr
    assert os.path.exists(os.path.join(os.fsencode(tmp_path / "out"), b"caf\xe9.png"))
    line = (tmp_path / "out" / "manifest.jsonl").read_bytes().decode("utf-8")  # valid UTF-8
    assert json.loads(line)["output"] == "caf\\xe9.png"
    with open(tmp_path / "out" / "manifest.csv", newline="", encoding="utf-8") as f:
        assert next(csv.DictReader(f))["output"] == "caf\\xe9.png"


def test_links_outside_the_source_folder_are_skipped_and_reported(tmp_path) -> None:
    """Item 7: a sidecar or image linking outside the source tree (a file, a folder) was
    copied into the dataset with no word.  By default it is skipped and reported (validate
    and the run's summary); ``follow_links: outside`` follows it."""
    from tests.conftest import run_cli_here

    make_photos(tmp_path / "data", 1)
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "leak.txt").write_text("not the dataset's\n")
    make_photos(tmp_path / "secret" / "pics", 1, seed=5)
    (tmp_path / "data" / "leak.txt").symlink_to(tmp_path / "secret" / "leak.txt")
    (tmp_path / "data" / "linked").symlink_to(tmp_path / "secret" / "pics")
    (tmp_path / "data" / "inside").symlink_to(tmp_path / "data", target_is_directory=True)  # a loop, inside

    def job(follow: str, output: str) -> Path:
        return write_job(tmp_path, f"""
sources:
  - images: data/
    sidecars: ["*.txt"]
    {follow}
output: {output}
stages: [decode, encode]
""", name=f"{output}.yaml")

    checked = run_cli_here("validate", str(job("", "out")))
    assert checked.returncode == 0, checked.stderr
    assert "leak.txt: a link to" in checked.stdout and "linked: a link to" in checked.stdout
    done = run_cli_here(str(job("", "out")))
    assert done.returncode == 0 and "skipped" in done.stderr and "leak.txt" in done.stderr
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")
                     if p.is_file() and not p.name.startswith(".") and not p.name.startswith("manifest"))
    assert written == ["img000.png"]
    followed = run_cli_here(str(job("follow_links: outside", "all")))
    assert followed.returncode == 0, followed.stderr
    assert (tmp_path / "all" / "leak.txt").is_file() and (tmp_path / "all" / "linked" / "img000.png").is_file()
