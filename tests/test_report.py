"""stackc report: one self-contained HTML page per bundle or batch, rendered by a real browser
(Debian's headless ``chromium``, installed by .ci/run) without console errors."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STACKC = [sys.executable, "-c", "from toolchain.cli import main; main()"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def stackc(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*STACKC, *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=600)


def render(page: Path, png: Path) -> tuple[str, str]:
    """(DOM after load, browser log) of ``page`` in headless Chromium; ``png``: its screenshot."""
    assert CHROMIUM, "chromium is not installed: .ci/run installs Debian's chromium package"
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             "--enable-logging=stderr", "--v=0", "--window-size=1280,2000", f"--user-data-dir={png.parent / 'chromium'}"]
    shot = subprocess.run([*flags, f"--screenshot={png}", page.resolve().as_uri()], capture_output=True, text=True,
                          timeout=180)
    dom = subprocess.run([*flags, "--dump-dom", page.resolve().as_uri()], capture_output=True, text=True, timeout=180)
    assert shot.returncode == 0 and dom.returncode == 0, shot.stderr[-2000:] + dom.stderr[-2000:]
    return dom.stdout, shot.stderr + dom.stderr


def console_errors(log: str) -> list[str]:
    """What the page itself logged or was refused (CSP blocks any fetch): Chromium's CONSOLE lines."""
    return [line for line in log.splitlines() if "CONSOLE" in line or "Refused to" in line or "net::ERR" in line]


def assert_self_contained(html: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html, re.I)
    assert "<script" not in html.lower() and "@import" not in html and "url(" not in html
    for src in re.findall(r'<img[^>]*src="([^"]+)"', html):
        assert src.startswith("data:image/png;base64,")


def assert_painted(png: Path) -> None:
    from PIL import Image

    with Image.open(png) as image:
        assert image.size[0] >= 1000
        assert len(image.convert("RGB").getcolors(1 << 20) or []) > 50  # text, tables, plots: not a blank page


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A real cloud bundle of the tiny ResNet (ONNX and OpenVINO artifacts) and its build --json."""
    tmp = tmp_path_factory.mktemp("report")
    result = stackc("build", ROOT / "tests/fixtures/models/resnet_tiny.onnx", "--target", "cloud", "--out", tmp / "out",
                    "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    (tmp / "build.json").write_text(result.stdout)
    return tmp, Path(json.loads(result.stdout)["bundle"])


def test_bundle_report_shows_stack_artifacts_plots_and_passes_and_renders_in_chromium(built):
    tmp, bundle = built
    page = tmp / "report.html"
    result = stackc("report", bundle, "-o", page, "--timings", tmp / "build.json")
    assert result.returncode == 0, result.stderr
    html = page.read_text()
    assert_self_contained(html)
    assert html.count("data:image/png;base64,") == 4  # histogram + scatter for one output of two artifacts
    for text in ("nine-layer stack", "CUDAExecutionProvider", "onnxruntime &gt;= 1.20", "policy: max_abs",
                 'id="passes"', "convert.openvino", "AMD" if "AMD" in html else "CPU"):
        assert text in html
    dom, log = render(page, tmp / "report.png")
    assert not console_errors(log), console_errors(log)
    artifacts = re.search(r'<table id="artifacts">.*?</table>', dom, re.S)
    assert artifacts and "onnx-fp32" in artifacts[0] and "openvino-fp32" in artifacts[0]
    assert_painted(tmp / "report.png")


def test_report_of_an_archive_without_timings_says_where_they_are(built):
    tmp, bundle = built
    page = tmp / "archive.html"
    result = stackc("report", f"{bundle}.tar.gz", "-o", page)
    assert result.returncode == 0, result.stderr
    html = page.read_text()
    assert "per-pass times are not stored in a bundle" in html and 'id="artifacts"' in html


def test_report_refuses_a_bundle_that_does_not_verify(built, tmp_path):
    _, bundle = built
    copy = tmp_path / bundle.name
    shutil.copytree(bundle, copy)
    model = copy / "artifacts" / "onnx-fp32" / "model.onnx"
    model.write_bytes(model.read_bytes() + b"\0")
    result = stackc("report", copy, "-o", tmp_path / "r.html")
    assert result.returncode == 7 and "does not verify" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "r.html").exists()
