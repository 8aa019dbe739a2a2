"""The bundle archive's gzip: one standard member that every reader accepts, stored where data does not
compress (fp32 weights), compressed where it does, byte-identical on every write."""
from __future__ import annotations

import gzip
import io
import random
import subprocess
import tarfile
from pathlib import Path

import pytest

from toolchain.bundle.gzip_segments import CHUNK, SegmentedGzipWriter
from toolchain.bundle.read import archive_manifest, extract_archive
from toolchain.bundle.store import write_archive

NOISE = random.Random(0).randbytes(5 * CHUNK)  # 5 MiB that no compressor shrinks


def _bundle(tmp_path: Path, files: dict[str, bytes]) -> Path:
    root = tmp_path / "demo-1.0.0-x"
    for rel, data in {"manifest.json": b'{"schema_version": 1}\n', **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _gzip(data: bytes, workers: int) -> bytes:
    out = io.BytesIO()
    with SegmentedGzipWriter(out, mtime=0, workers=workers) as gz:
        for start in range(0, len(data), 300_000):  # writes that straddle chunk boundaries
            gz.write(data[start:start + 300_000])
    return out.getvalue()


def test_a_mixed_archive_reads_back_with_python_stackc_and_the_system_gzip_and_tar(tmp_path):
    text = b"".join(b"row %d: conv weight ok\n" % (i % 97) for i in range(60_000))
    root = _bundle(tmp_path, {"artifacts/model.bin": NOISE, "parity/zeros.npy": bytes(3 * CHUNK) + NOISE[:1000],
                              "build.log": text, "empty.txt": b""})
    archive = tmp_path / "demo.tar.gz"
    write_archive(root, archive)

    raw_tar = gzip.decompress(archive.read_bytes())
    with tarfile.open(archive, "r:gz") as tar:
        names = tar.getnames()
        assert tar.extractfile("demo-1.0.0-x/artifacts/model.bin").read() == NOISE
    assert names[:2] == ["demo-1.0.0-x", "demo-1.0.0-x/manifest.json"]
    with tarfile.open(fileobj=io.BytesIO(raw_tar)) as tar:
        assert tar.getnames() == names
    assert subprocess.run(["gzip", "-t", archive], check=False, capture_output=True).returncode == 0
    listed = subprocess.run(["tar", "-tzf", archive], capture_output=True, text=True, check=True).stdout.split()
    assert [n.rstrip("/") for n in listed] == names
    assert archive_manifest(archive) == b'{"schema_version": 1}\n'
    assert _files(extract_archive(archive, tmp_path / "x")) == _files(root)


def test_incompressible_data_costs_under_0_1_percent_over_the_raw_tar_and_compressible_data_shrinks(tmp_path):
    noise, zeros = tmp_path / "noise.tar.gz", tmp_path / "zeros.tar.gz"
    write_archive(_bundle(tmp_path / "a", {"model.bin": NOISE}), noise)
    write_archive(_bundle(tmp_path / "b", {"model.bin": bytes(len(NOISE))}), zeros)
    noise_tar = len(gzip.decompress(noise.read_bytes()))
    assert len(NOISE) < noise.stat().st_size <= noise_tar * 1.001
    assert zeros.stat().st_size < len(gzip.decompress(zeros.read_bytes())) * 0.01


def test_the_same_files_give_the_same_archive_bytes_on_every_write(tmp_path):
    root = _bundle(tmp_path, {"artifacts/model.bin": NOISE[:2 * CHUNK] + bytes(CHUNK)})
    write_archive(root, tmp_path / "a.tar.gz")
    write_archive(root, tmp_path / "b.tar.gz")
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, 3 * CHUNK + 5])
def test_the_stream_round_trips_and_its_bytes_do_not_depend_on_the_thread_count(size):
    data = (NOISE[:CHUNK // 2] + bytes(CHUNK // 2)) * 4
    data = data[:size]
    one, three = _gzip(data, workers=1), _gzip(data, workers=3)
    assert one == three
    assert gzip.decompress(one) == data


def test_the_header_has_the_archive_mtime_and_no_file_name(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    archive = tmp_path / "demo.tar.gz"
    write_archive(_bundle(tmp_path, {}), archive)
    header = archive.read_bytes()[:10]
    assert header[:4] == b"\x1f\x8b\x08\x00"  # deflate, no flags: no file name
    assert int.from_bytes(header[4:8], "little") == 1700000000
