"""Hostile registries and tampered artifacts for ``stackc pull``: each one line, a documented exit code
(7: the content does not verify; 9: the registry cannot be reached or refuses; 8: nothing fits),
and nothing at the final path. The registry is real (tests/registry_server.py); "garbage" answers
come from a tiny hostile server in this file, which plays an attacker, not the protocol.
"""
from __future__ import annotations

import hashlib
import json
import socketserver
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from bundle_helpers import copy_bundle, reseal
from conftest import assert_user_error, run_stackc
from registry_server import cloud_bundle, free_port, keys, registry  # noqa: F401  (fixtures)

OCI = "application/vnd.oci.image.manifest.v1+json"
TITLE = "org.opencontainers.image.title"


@pytest.fixture(scope="module")
def pushed(registry, cloud_bundle) -> dict:
    """The cloud bundle pushed once; its OCI manifest as the registry holds it."""
    assert run_stackc("push", cloud_bundle, registry.ref("hostile/base", "t")).exit_code == 0
    return _get_manifest(registry, "hostile/base", "t")


def _get_manifest(registry, repo: str, tag: str) -> dict:
    return requests.get(f"http://{registry.host}/v2/{repo}/manifests/{tag}", headers={"Accept": OCI}).json()


def put_blob(registry, repo: str, data: bytes) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = requests.post(f"http://{registry.host}/v2/{repo}/blobs/uploads/")
    location = start.headers["Location"]
    location = location if location.startswith("http") else f"http://{registry.host}{location}"
    sep = "&" if "?" in location else "?"
    done = requests.put(f"{location}{sep}digest={digest}", data=data, headers={"Content-Type": "application/octet-stream"})
    assert done.status_code == 201, done.text
    return {"digest": digest, "size": len(data)}


def put_manifest(registry, repo: str, document: dict, tag: str = "t") -> str:
    """A manifest pushed as is (the registry checks that blobs exist, not what stackc checks)."""
    for descriptor in [document["config"], *document["layers"]]:
        requests.post(f"http://{registry.host}/v2/{repo}/blobs/uploads/?mount={descriptor['digest']}&from=hostile/base")
    response = requests.put(f"http://{registry.host}/v2/{repo}/manifests/{tag}", data=json.dumps(document),
                            headers={"Content-Type": OCI})
    assert response.status_code == 201, response.text
    return f"{registry.host}/{repo}:{tag}"


def _layer(document: dict, title: str) -> dict:
    return next(layer for layer in document["layers"] if layer["annotations"][TITLE] == title)


def _copy(document: dict) -> dict:
    return json.loads(json.dumps(document))


def _fails(out: Path, exit_code: int, *args, words=()) -> str:
    line = assert_user_error(run_stackc("pull", *args, "-o", out), exit_code, *words)
    assert not out.exists() or list(out.iterdir()) == [], list(out.iterdir())
    return line


@contextmanager
def tampered_blob(registry, digest: str, change):
    """The registry's stored bytes of a blob changed in place (a compromised storage), restored after."""
    path = registry.blob_path(digest)
    original = path.read_bytes()
    path.write_bytes(change(original))
    try:
        yield
    finally:
        path.write_bytes(original)


def _flip(data: bytes) -> bytes:
    return data[:100] + bytes([data[100] ^ 1]) + data[101:]


# -- tampered storage on a real registry ------------------------------------------------------


@pytest.mark.parametrize("title", ["artifacts/onnx-fp32/model.onnx", "SHA256SUMS", "parity/reference.npz"])
def test_a_tampered_layer_is_refused_with_exit_7(registry, pushed, tmp_path, title):
    with tampered_blob(registry, _layer(pushed, title)["digest"], _flip):
        _fails(tmp_path, 7, registry.ref("hostile/base", "t"), words=("digest",))


def test_a_tampered_config_blob_is_refused_with_exit_7(registry, pushed, tmp_path):
    with tampered_blob(registry, pushed["config"]["digest"], lambda d: d.replace(b'"cloud"', b'"cloux"', 1)):
        _fails(tmp_path, 7, registry.ref("hostile/base", "t"), words=("manifest.json",))


def test_a_truncated_layer_is_refused_with_exit_7(registry, pushed, tmp_path):
    with tampered_blob(registry, _layer(pushed, "build.log")["digest"], lambda d: d[:-5]):
        _fails(tmp_path, 7, registry.ref("hostile/base", "t"))


def test_a_layer_blob_lost_from_storage_is_exit_9(registry, pushed, tmp_path):
    path = registry.blob_path(_layer(pushed, "build.log")["digest"])
    hidden = path.with_name("hidden")
    path.rename(hidden)
    try:
        _fails(tmp_path, 9, registry.ref("hostile/base", "t"), words=("HTTP 404",))
    finally:
        hidden.rename(path)


# -- manifests that lie -----------------------------------------------------------------------


def _lying(registry, pushed, repo: str, edit) -> str:
    document = _copy(pushed)
    edit(document)
    return put_manifest(registry, repo, document)


def test_a_layer_with_another_files_digest_is_refused(registry, pushed, tmp_path):
    def swap(doc):
        _layer(doc, "build.log").update({k: _layer(doc, "parity/samples.npz")[k] for k in ("digest", "size")})
    _fails(tmp_path, 7, _lying(registry, pushed, "hostile/swap", swap), words=("build.log", "SHA256SUMS"))


def test_a_manifest_that_understates_a_size_is_refused(registry, pushed, tmp_path):
    ref = _lying(registry, pushed, "hostile/small", lambda doc: _layer(doc, "build.log").update(size=10))
    _fails(tmp_path, 7, ref, words=("more than 10 bytes",))


def test_a_manifest_that_overstates_a_size_is_refused(registry, pushed, tmp_path):
    def grow(doc):
        _layer(doc, "build.log")["size"] += 1000
    _fails(tmp_path, 7, _lying(registry, pushed, "hostile/big", grow), words=("build.log",))


@pytest.mark.parametrize("title, words", [("../evil.txt", "leaves the bundle"), ("/etc/evil", "absolute"),
                                          ("artifacts/../../x", "leaves the bundle"), ("a\\b", "backslash"),
                                          ("", "is not a path")])
def test_a_layer_title_outside_the_bundle_is_refused(registry, pushed, tmp_path, title, words):
    ref = _lying(registry, pushed, "hostile/title", lambda doc: _layer(doc, "build.log")["annotations"].update({TITLE: title}))
    _fails(tmp_path, 7, ref, words=(words,))
    assert not (tmp_path.parent / "evil.txt").exists()


def test_a_title_listed_twice_is_refused(registry, pushed, tmp_path):
    ref = _lying(registry, pushed, "hostile/twice", lambda doc: _layer(doc, "build.log")["annotations"].update(
        {TITLE: "SHA256SUMS"}))
    _fails(tmp_path, 7, ref, words=("appears twice",))


def test_a_layer_sha256sums_does_not_list_is_refused(registry, pushed, tmp_path):
    def extra(doc):
        doc["layers"].append({**_layer(doc, "build.log"), "annotations": {TITLE: "artifacts/extra/run.sh"}})
    _fails(tmp_path, 7, _lying(registry, pushed, "hostile/extra", extra), words=("run.sh",))


def test_a_listed_file_without_its_layer_is_refused(registry, pushed, tmp_path):
    def drop(doc):
        doc["layers"] = [layer for layer in doc["layers"] if layer["annotations"][TITLE] != "parity/samples.npz"]
    _fails(tmp_path, 7, _lying(registry, pushed, "hostile/drop", drop), words=("samples.npz",))


def test_an_image_that_is_not_a_stackc_bundle_is_refused(registry, pushed, tmp_path):
    ref = _lying(registry, pushed, "hostile/image", lambda doc: doc.pop("artifactType"))
    _fails(tmp_path, 7, ref, words=("not a stackc bundle",))


def test_a_config_that_is_not_a_stackc_manifest_is_refused(registry, pushed, tmp_path):
    config = put_blob(registry, "hostile/config", b'{"schema_version": 1, "bundle": {"name": "../../x"}}')
    ref = _lying(registry, pushed, "hostile/config", lambda doc: doc["config"].update(config))
    _fails(tmp_path, 7, ref, words=("config blob",))


# -- signatures --------------------------------------------------------------------------------


def test_an_unsigned_bundle_is_refused_when_a_key_is_given(registry, pushed, keys, tmp_path):
    _fails(tmp_path, 7, registry.ref("hostile/base", "t"), "--key", keys["public"], words=("not signed",))


def test_another_keys_signature_is_refused(registry, cloud_bundle, keys, tmp_path):
    signed = copy_bundle(cloud_bundle, tmp_path / "signed")
    assert run_stackc("sign", signed, "--key", keys["private"]).exit_code == 0
    assert run_stackc("push", signed, registry.ref("hostile/signed", "t")).exit_code == 0
    _fails(tmp_path / "out", 7, registry.ref("hostile/signed", "t"), "--key", keys["other"], words=("another key",))


def test_a_resealed_bundle_fails_its_signature(registry, cloud_bundle, keys, tmp_path):
    """An attacker swaps a model and rewrites SHA256SUMS and the manifest: only the signature catches it."""
    signed = copy_bundle(cloud_bundle, tmp_path / "signed")
    assert run_stackc("sign", signed, "--key", keys["private"]).exit_code == 0
    log = signed / "build.log"
    log.write_text(log.read_text() + "attacker was here\n")
    reseal(signed)
    assert run_stackc("push", signed, registry.ref("hostile/resealed", "t")).exit_code == 0
    _fails(tmp_path / "out", 7, registry.ref("hostile/resealed", "t"), "--key", keys["public"],
           words=("differs from the signed digest",))


# -- registries that are down, absent or hostile ------------------------------------------------


def test_a_registry_that_is_down_is_exit_9(tmp_path):
    _fails(tmp_path, 9, f"127.0.0.1:{free_port()}/vision/resnet:t", words=("connection failed",))


def test_push_to_a_registry_that_is_down_is_exit_9(cloud_bundle):
    assert_user_error(run_stackc("push", cloud_bundle, f"127.0.0.1:{free_port()}/vision/resnet:t"), 9)


def test_an_unknown_tag_is_exit_9(registry, tmp_path):
    _fails(tmp_path, 9, registry.ref("hostile/nothing", "nope"), words=("HTTP 404",))


def test_a_bad_reference_is_a_usage_error(tmp_path):
    _fails(tmp_path, 2, "resnet:latest", words=("HOST[:PORT]/REPOSITORY:TAG",))


def test_no_fitting_artifact_is_exit_8_and_nothing_is_fetched(registry, pushed, tmp_path):
    _fails(tmp_path, 8, registry.ref("hostile/base", "t"), "--os", "ios", "--os-version", "17.0", words=("fits",))


def test_a_users_folder_at_the_final_path_is_left_alone(registry, pushed, cloud_bundle, tmp_path):
    mine = tmp_path / cloud_bundle.name
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    assert_user_error(run_stackc("pull", registry.ref("hostile/base", "t"), "-o", tmp_path), 7, "not a stackc bundle")
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


class _Hostile(BaseHTTPRequestHandler):
    answers: dict = {}

    def _send(self, status: int, body: bytes, headers: dict) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        self._send(*self.answers.get("manifest" if "/manifests/" in self.path else "blob", (404, b"", {})))

    def log_message(self, *args):
        pass


@contextmanager
def hostile_server(**answers):
    handler = type("Handler", (_Hostile,), {"answers": answers})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("body, words", [(b"<html>not json</html>", "not valid JSON"), (b"[1, 2]", "not a JSON object"),
                                         (b'{"a": 1, "a": 2}', "appears twice"),
                                         (b"[" * 100 + b"]" * 100, "nested"),
                                         (b" " * (4 * 2**20 + 10), "more than")])
def test_a_server_answering_garbage_is_refused_with_exit_7(tmp_path, body, words):
    with hostile_server(manifest=(200, body, {"Content-Type": OCI})) as host:
        _fails(tmp_path, 7, f"{host}/vision/resnet:t", words=(words,))


def test_a_manifest_other_than_the_digest_asked_for_is_refused(pushed, tmp_path):
    body = json.dumps(pushed).encode()
    with hostile_server(manifest=(200, body, {"Content-Type": OCI})) as host:
        _fails(tmp_path, 7, f"{host}/vision/resnet@sha256:{'0' * 64}", words=("digest",))


def test_a_blob_answered_with_endless_bytes_is_cut_off(pushed, tmp_path):
    body = json.dumps(pushed).encode()
    with hostile_server(manifest=(200, body, {}), blob=(200, b"x" * (2 * 2**20), {})) as host:
        _fails(tmp_path, 7, f"{host}/vision/resnet:t", words=("more than",))


def test_a_server_that_does_not_speak_http_is_exit_9(tmp_path):
    class Garbage(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.recv(1024)
            self.request.sendall(b"\x00\xffSSH-2.0-not-http\r\n\r\n")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Garbage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _fails(tmp_path, 9, f"127.0.0.1:{server.server_address[1]}/vision/resnet:t")
    finally:
        server.shutdown()
        server.server_close()


def test_a_registry_asking_for_credentials_is_exit_9(tmp_path):
    with hostile_server(manifest=(401, b"", {"WWW-Authenticate": 'Basic realm="x"'})) as host:
        _fails(tmp_path, 9, f"{host}/vision/resnet:t")


class _NeedsLogin(_Hostile):
    """The token flow of Docker Hub, GHCR or Harbor: the Docker config's user and password buy a bearer
    token at the realm; only a request carrying it is answered (with garbage, to prove it was read)."""

    def do_GET(self):  # noqa: N802
        import base64

        host = f"127.0.0.1:{self.server.server_address[1]}"
        if self.path.startswith("/token"):
            if self.headers.get("Authorization") == "Basic " + base64.b64encode(b"fleet:s3cret").decode():
                return self._send(200, b'{"token": "t0k"}', {"Content-Type": "application/json"})
            return self._send(401, b"", {})
        if self.headers.get("Authorization") != "Bearer t0k":
            return self._send(401, b"", {"WWW-Authenticate": f'Bearer realm="http://{host}/token",service="test"'})
        return self._send(200, b"[1]", {})


def test_credentials_come_from_the_docker_config(tmp_path, monkeypatch):
    import base64

    server = ThreadingHTTPServer(("127.0.0.1", 0), _NeedsLogin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    config = tmp_path / "docker"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({"auths": {host: {"auth": base64.b64encode(b"fleet:s3cret").decode()}}}))
    try:
        monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.docker/config.json: no credentials, refused
        _fails(tmp_path / "out", 9, f"{host}/vision/resnet:t")
        monkeypatch.setenv("DOCKER_CONFIG", str(config))
        _fails(tmp_path / "out", 7, f"{host}/vision/resnet:t", words=("not a JSON object",))  # logged in: read
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("reference, insecure, scheme", [
    ("registry.example.com/vision/resnet:t", False, "https"), ("registry.example.com/vision/resnet:t", True, "http"),
    ("localhost:5000/vision/resnet:t", False, "http"), ("127.0.0.1:5000/vision/resnet:t", False, "http"),
    ("[::1]:5000/vision/resnet:t", False, "http"), ("10.0.0.7:5000/vision/resnet:t", False, "https")])
def test_plain_http_only_for_loopback_unless_insecure(reference, insecure, scheme):
    from toolchain.registry.reference import connect, parse_reference

    client, _ = connect(parse_reference(reference), insecure)
    assert client.prefix == scheme
