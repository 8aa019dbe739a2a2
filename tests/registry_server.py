"""A real CNCF distribution registry (Debian's ``docker-registry``) on loopback, for push/pull tests.

Why a real one: the tests must not mock the distribution protocol. The server stores blobs on the
filesystem under ``root`` (so a test can tamper with them) and writes an access log the tests read
to count blob GETs. ``.ci/run`` installs the package; a missing binary fails the tests, never skips.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

BINARY = os.environ.get("STACKC_TEST_REGISTRY", "/usr/bin/docker-registry")
_BLOB_GET = re.compile(r'"GET /v2/(?P<repo>[^ ]+)/blobs/(?P<digest>sha256:[0-9a-f]{64}) HTTP')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Registry:
    host: str  # 127.0.0.1:<port>
    root: Path  # filesystem storage
    log: Path

    def ref(self, repo: str, tag: str) -> str:
        return f"{self.host}/{repo}:{tag}"

    def blob_path(self, digest: str) -> Path:
        hexdigest = digest.removeprefix("sha256:")
        return self.root / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"

    def blob_gets(self, repo: str) -> list[str]:
        """The digests of every blob GET so far on ``repo``, from the access log, once it stops growing.

        The registry logs a request after its client has the response: read at once, the log missed
        the last GET of a pull (a full run at c2aead8 counted 5 of the 6 the log held a moment later)."""
        text, deadline = self.log.read_text(encoding="utf-8", errors="replace"), time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.2)
            again = self.log.read_text(encoding="utf-8", errors="replace")
            if again == text:
                break
            text = again
        return [m["digest"] for m in _BLOB_GET.finditer(text) if m["repo"] == repo]


def start_registry(folder: Path) -> tuple[subprocess.Popen, Registry]:
    if not (os.path.isfile(BINARY) and os.access(BINARY, os.X_OK)):
        pytest.fail(f"{BINARY} is missing: install Debian's docker-registry package "
                    "(apt-get install -y docker-registry; .ci/run does it)", pytrace=False)
    port = free_port()
    root, log, config = folder / "storage", folder / "registry.log", folder / "config.yml"
    root.mkdir(parents=True, exist_ok=True)
    config.write_text(f"""version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
""", encoding="utf-8")
    handle = open(log, "wb")
    process = subprocess.Popen([BINARY, "serve", str(config)], stdout=handle, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
    handle.close()
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"docker-registry did not answer on 127.0.0.1:{port}: {log.read_text(errors='replace')[-500:]}",
                        pytrace=False)
        time.sleep(0.1)
    return process, Registry(f"127.0.0.1:{port}", root, log)


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """One registry for the session, stopped after it."""
    process, server = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(server.root, ignore_errors=True)


# -- what the registry tests push: shared by test_registry_push_pull and test_registry_hostile ------


@pytest.fixture(scope="module")
def cloud_bundle(tmp_path_factory) -> Path:
    """resnet_tiny for the cloud world (ONNX + OpenVINO IR), built once per test module; read-only."""
    from conftest import build_bundle, fixture_model

    out = tmp_path_factory.mktemp("cloud")
    return Path(build_bundle(fixture_model("resnet_tiny"), "cloud", out)["bundle"])


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict:
    """A release key pair and a second public key that signed nothing here."""
    from conftest import run_stackc

    folder = tmp_path_factory.mktemp("keys")
    for name in ("release", "other"):
        assert run_stackc("keygen", folder / f"{name}.key").exit_code == 0
    return {"private": folder / "release.key", "public": folder / "release.pub", "other": folder / "other.pub"}
