"""A corpus of >= 200 hostile or broken inputs, generated here, each run through the real CLI.

Every case must end with its documented exit code and one ``stackc: error:`` line (click's own
usage message for exit 2), never a traceback or an internal error (exit 1), and must write
nothing outside its own work folder: no bundle, no ``.partial-`` leftovers, no temp files.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import run_stackc

EXPECTED_CODES = {2, 3, 4, 5, 6, 7}


def tiny_model(weight: np.ndarray | None = None, opset: int = 17, ir_version: int = 8, dims=(1, 3, 8, 8)):
    """Conv(3->4, 3x3) + Relu on a [1,3,8,8] input: valid, 600 bytes."""
    if weight is None:
        weight = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [dims[0], 4, *dims[2:]])],
        [numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    return model


def desktop_onnx_openvino(dest: Path) -> Path:
    """edge-desktop pinned to its ONNX and OpenVINO variants: a build of about a second whose outcome does
    not change when other variants (fp16 Core ML, ...) join the shipped world while tests run."""
    text = (Path(__file__).resolve().parent.parent / "targets" / "edge-desktop.toml").read_text()
    header, *blocks = text.split("\n[[variants]]\n")
    kept = [b for b in blocks if 'format = "onnx"' in b or 'format = "openvino"' in b]
    dest.write_text(header + "".join("\n[[variants]]\n" + b for b in kept))
    return dest


def single_op_model(op: str, domain: str = "", opsets=(("", 17),), dims=(1, 4)):
    node = helper.make_node(op, ["x"], ["y"], domain=domain)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(dims))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    model.ir_version = 8
    return model


def external_model(location: str, offset: int | None = None, length: int | None = None):
    """tiny_model whose weight lives in external data at ``location``."""
    model = tiny_model()
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    entries = {"location": location}
    if offset is not None:
        entries["offset"] = str(offset)
    if length is not None:
        entries["length"] = str(length)
    for key, value in entries.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return model


@dataclass
class Case:
    name: str
    make: Callable[[Path], list[str]]  # writes its files under the work folder, returns the stackc arguments
    builds: bool = False  # hostile-looking but legitimate: must build (exit 0), e.g. an Inf weight


def _model_case(name, payload: Callable[[], bytes], *extra) -> Case:
    def make(work: Path) -> list[str]:
        path = work / "model.onnx"
        path.write_bytes(payload())
        return ["build", str(path), "--target", "edge-desktop", "--out", str(work / "out"), *extra]
    return Case(name, make)


def _pinned_build(model, *extra: str) -> Callable[[Path], list[str]]:
    def make(work: Path) -> list[str]:
        (work / "model.onnx").write_bytes(model.SerializeToString())
        target = desktop_onnx_openvino(work / "edge-desktop.toml")
        return ["build", str(work / "model.onnx"), "--target", str(target), "--out", str(work / "out"), *extra]
    return make


def _proto(model) -> Callable[[], bytes]:
    return lambda: model.SerializeToString()


def _with_files(name, model, files: dict[str, bytes], links: dict[str, str] | None = None) -> Case:
    def make(work: Path) -> list[str]:
        (work / "model").mkdir()
        (work / "model" / "model.onnx").write_bytes(model.SerializeToString())
        for rel, data in files.items():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).write_bytes(data)
        for rel, dest in (links or {}).items():
            os.symlink(dest, work / "model" / rel)
        return ["build", str(work / "model" / "model.onnx"), "--target", "edge-desktop", "--out", str(work / "out")]
    return Case(name, make)


def model_cases() -> list[Case]:
    valid = tiny_model().SerializeToString()
    big = (Path(__file__).parent / "fixtures" / "models" / "resnet_tiny.onnx").read_bytes()
    cases = [_model_case("empty", lambda: b"")]
    for i, cut in enumerate(np.linspace(1, len(valid) - 1, 60).astype(int)):
        cases.append(_model_case(f"truncated-tiny-at-{cut}", lambda cut=cut: valid[:cut]))
    for cut in np.linspace(1, len(big) - 1, 25).astype(int):
        cases.append(_model_case(f"truncated-resnet-at-{cut}", lambda cut=cut: big[:cut]))
    for seed in range(30):
        size = int(np.random.default_rng(seed).integers(1, 4096))
        cases.append(_model_case(f"random-bytes-{seed}", lambda seed=seed, size=size: np.random.default_rng(seed).bytes(size)))
    not_onnx = {
        "text": b"hello, I am a text file\n",
        "json": json.dumps({"model": "resnet"}).encode(),
        "png": b"\x89PNG\r\n\x1a\n" + bytes(100),
        "zip": b"PK\x03\x04" + bytes(60),
        "elf": b"\x7fELF\x02\x01\x01" + bytes(120),
        "gzip-of-model": gzip.compress(valid, mtime=0),
        "npz": _npz_bytes(),
        "toml": b'name = "edge-desktop"\n[layers]\n',
        "utf16": "ONNX model".encode("utf-16"),
        "pytorch-pickle": b"\x80\x02}q\x00(X\x05\x00\x00\x00modelq\x01" + bytes(30),
        "tflite-header": b"\x1c\x00\x00\x00TFL3" + bytes(200),
        "all-zero": bytes(4096),
    }
    cases += [_model_case(f"not-onnx-{k}", lambda v=v: v) for k, v in not_onnx.items()]
    cases += [_model_case(f"broken-graph-{k}", _proto(m)) for k, m in broken_graphs().items()]
    cases += [
        _model_case("unknown-op-default-domain", _proto(single_op_model("FooBarOp"))),
        _model_case("unknown-op-custom-domain", _proto(single_op_model("Evil", "com.evil", (("", 17), ("com.evil", 1))))),
        _model_case("unknown-domain-undeclared", _proto(single_op_model("Relu", "com.undeclared"))),
        _model_case("opset-future-99", _proto(tiny_model(opset=99))),
        _model_case("opset-zero", _proto(tiny_model(opset=0))),
        _model_case("opset-1-conv", _proto(tiny_model(opset=1))),
        _model_case("ir-version-99", _proto(tiny_model(ir_version=99))),
        _model_case("ir-version-0", _proto(tiny_model(ir_version=0))),
        # a negative dim is dynamic (Paddle2ONNX writes -1): --shape fixes it and the model builds (without
        # --shape a static world asks for it: tests/test_practitioner.py)
        Case("dims-negative", _pinned_build(tiny_model(dims=(1, 3, -8, 8)), "--shape", "x=1,3,8,8"), builds=True),
        _model_case("dims-zero", _proto(single_op_model("Relu", dims=(0, 4)))),
        _model_case("dims-absurd-1e12", _proto(single_op_model("Relu", dims=(10**12, 10**6)))),
        _model_case("dims-absurd-2pow62", _proto(single_op_model("Relu", dims=(2**62,)))),
        _model_case("dims-rank-64", _proto(single_op_model("Relu", dims=(2,) * 64))),
        _model_case("dims-wrong-for-conv", _proto(tiny_model(dims=(1, 5, 8, 8)))),
        _model_case("nan-weights", _proto(tiny_model(np.full((4, 3, 3, 3), np.nan, np.float32)))),
        _model_case("one-nan-weight", _proto(tiny_model(_one(np.nan)))),
        Case("inf-weight", _pinned_build(tiny_model(_one(np.inf))), builds=True),
        Case("minus-inf-weight", _pinned_build(tiny_model(_one(-np.inf))), builds=True),
        _model_case("huge-weights-overflow", _proto(tiny_model(np.full((4, 3, 3, 3), 3e38, np.float32)))),
    ]
    weight = tiny_model().graph.initializer[0].raw_data
    cases += [
        _with_files("external-data-dotdot", external_model("../secret.bin"), {"secret.bin": weight}),
        _with_files("external-data-dotdot-deep", external_model("a/../../secret.bin"), {"secret.bin": weight}),
        _with_files("external-data-absolute", external_model("/etc/passwd"), {}),
        _with_files("external-data-absolute-own-dir", external_model("__ABS__"), {}),
        _with_files("external-data-symlink-out", external_model("w.bin"), {"secret.bin": weight},
                    {"w.bin": "../secret.bin"}),
        _with_files("external-data-symlink-abs", external_model("w.bin"), {}, {"w.bin": "/etc/hostname"}),
        _with_files("external-data-missing", external_model("nowhere.bin"), {}),
        _with_files("external-data-is-dir", external_model("sub"), {"model/sub/x": b"x"}),
        _with_files("external-data-short", external_model("w.bin"), {"model/w.bin": weight[:10]}),
        _with_files("external-data-offset-past-end", external_model("w.bin", offset=10**9, length=432),
                    {"model/w.bin": weight}),
        _with_files("external-data-negative-offset", external_model("w.bin", offset=-5), {"model/w.bin": weight}),
        _with_files("external-data-length-huge", external_model("w.bin", length=10**15), {"model/w.bin": weight}),
    ]
    return cases


def _one(value) -> np.ndarray:
    weight = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    weight[0, 0, 0, 0] = value
    return weight


def _npz_bytes() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, x=np.zeros(3))
    return buffer.getvalue()


def broken_graphs() -> dict[str, onnx.ModelProto]:
    f = TensorProto.FLOAT
    x, y = helper.make_tensor_value_info("x", f, [1, 4]), helper.make_tensor_value_info("y", f, [1, 4])

    def model(nodes, inputs=(x,), outputs=(y,), initializers=()):
        m = helper.make_model(helper.make_graph(nodes, "g", list(inputs), list(outputs), list(initializers)),
                              opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        return m

    bad_init = numpy_helper.from_array(np.zeros((4, 4), np.float32), "w")
    bad_init.raw_data = b"\x00" * 7
    wrong_type = numpy_helper.from_array(np.zeros((4, 4), np.float32), "w")
    wrong_type.data_type = 999
    return {
        "missing-input": model([helper.make_node("Relu", ["nope"], ["y"])]),
        "output-never-produced": model([helper.make_node("Relu", ["x"], ["z"])]),
        "duplicate-output-names": model([helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Relu", ["x"], ["y"])]),
        "cycle": model([helper.make_node("Add", ["x", "b"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
                        helper.make_node("Identity", ["a"], ["y"])]),
        "no-outputs": model([helper.make_node("Relu", ["x"], ["y"])], outputs=()),
        "empty-graph": model([], inputs=(), outputs=()),
        "initializer-wrong-size": model([helper.make_node("MatMul", ["x", "w"], ["y"])], initializers=(bad_init,)),
        "initializer-unknown-dtype": model([helper.make_node("MatMul", ["x", "w"], ["y"])], initializers=(wrong_type,)),
        "node-without-op": model([helper.make_node("", ["x"], ["y"])]),
        "wrong-arity": model([helper.make_node("Add", ["x"], ["y"])]),
        "bad-attribute-type": model([helper.make_node("Softmax", ["x"], ["y"], axis="zero")]),
        "input-no-type": model([helper.make_node("Relu", ["x"], ["y"])], inputs=(helper.make_value_info("x", onnx.TypeProto()),)),
    }


def config_cases() -> list[Case]:
    """Recipe and target files with wrong types, each given to a build of a valid model."""
    recipes = {
        "invalid-toml": "steps = [",
        "empty": "",
        "binary": "\x00\x01\x02",
        "steps-not-a-list": 'name = "r"\ndescription = "d"\nsteps = "load.check"\n',
        "step-id-int": 'name = "r"\ndescription = "d"\n[[steps]]\nid = 5\n',
        "step-options-string": 'name = "r"\ndescription = "d"\n[[steps]]\nid = "optimize"\noptions = "fast"\n',
        "unknown-pass": 'name = "r"\ndescription = "d"\n[[steps]]\nid = "make.faster"\n',
        "unknown-key": 'name = "r"\ndescription = "d"\nbogus = 1\n[[steps]]\nid = "load.check"\n',
        "steps-ints": 'name = "r"\ndescription = "d"\nsteps = [1, 2]\n',
        "convert-not-table": 'name = "r"\ndescription = "d"\nconvert = 3\n[[steps]]\nid = "load.check"\n',
        "name-bool": 'name = true\ndescription = "d"\n[[steps]]\nid = "load.check"\n',
    }
    desktop = (Path(__file__).resolve().parent.parent / "targets" / "edge-desktop.toml").read_text()
    targets = {
        "invalid-toml": "[[variants]",
        "empty": "",
        "variants-not-list": "variants = 5\n" + desktop.split("[[variants]]")[0],
        "format-unknown": desktop.replace('format = "onnx"', 'format = "pickle"', 1),
        "precision-int": desktop.replace('precision = "fp32"', "precision = 32", 1),
        "parity-string": desktop.replace("max_abs = 1e-4", 'max_abs = "tiny"', 1),
        "platforms-missing": _drop_platforms(desktop),
        "platforms-not-list": desktop.replace("platforms = [", "platforms = 3\nxplatforms = [", 1),
        "platform-os-unknown": desktop.replace('os = "windows"', 'os = "beos"', 1),
        "platform-arch-unknown": desktop.replace('arch = ["x86_64", "arm64"]', 'arch = ["z80"]', 1),
        "platform-version-text": desktop.replace('min_version = "13.0"', 'min_version = "13+"', 1),
        "layers-missing": desktop.replace("[layers]", "[layers_gone]", 1),
        "unknown-key": desktop + "\nsurprise = 1\n",
        "shapes-dims-negative": desktop.replace("dims = { ", "dims = { neg = -3, ", 1),
    }
    model = tiny_model().SerializeToString()

    def with_config(kind: str, text: str) -> Callable[[Path], list[str]]:
        def make(work: Path) -> list[str]:
            (work / "model.onnx").write_bytes(model)
            path = work / f"{kind}.toml"
            path.write_text(text, encoding="utf-8")
            target = ["--target", str(path)] if kind == "target" else ["--target", "edge-desktop", "--recipe", str(path)]
            return ["build", str(work / "model.onnx"), *target, "--out", str(work / "out")]
        return make

    cases = [Case(f"recipe-{k}", with_config("recipe", v)) for k, v in recipes.items()]
    cases += [Case(f"target-{k}", with_config("target", v)) for k, v in targets.items()]
    return cases


def _drop_platforms(text: str) -> str:
    out, skipping = [], False
    for line in text.splitlines():
        if line.startswith("platforms = ["):
            skipping = True
        elif skipping and line.startswith("]"):
            skipping = False
            continue
        if not skipping:
            out.append(line)
    return "\n".join(out) + "\n"


def option_cases() -> list[Case]:
    model = tiny_model().SerializeToString()

    def build_with(*extra, files: dict[str, bytes] | None = None):
        def make(work: Path) -> list[str]:
            (work / "model.onnx").write_bytes(model)
            for rel, data in (files or {}).items():
                (work / rel).write_bytes(data)
            return ["build", str(work / "model.onnx"), "--target", "edge-desktop", "--out", str(work / "out"),
                    *[str(work / e[1:]) if e.startswith("@") else e for e in extra]]
        return make

    public_pem = (b"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"
                  b"AAAA\n-----END PUBLIC KEY-----\n")
    return [
        Case("shape-junk", build_with("--shape", "x=a,b")),
        Case("shape-negative", build_with("--shape", "x=1,3,-8,8")),
        Case("shape-unknown-input", build_with("--shape", "nope=1,2")),
        Case("version-not-semver", build_with("--version", "v1")),
        Case("target-unknown", build_with("--target", "mars")),
        Case("inputs-garbage", build_with("--inputs", "@in.npz", files={"in.npz": b"garbage"})),
        Case("inputs-wrong-keys", build_with("--inputs", "@in.npz", files={"in.npz": _npz_bytes()})),
        Case("model-is-directory", lambda work: ["build", str(work), "--target", "edge-desktop"]),
        Case("model-missing", lambda work: ["build", str(work / "nope.onnx"), "--target", "edge-desktop"]),
        Case("sign-key-garbage", build_with("--sign", "@k.pem", files={"k.pem": b"not a key"})),
        Case("sign-key-empty", build_with("--sign", "@k.pem", files={"k.pem": b""})),
        Case("sign-key-public", build_with("--sign", "@k.pem", files={"k.pem": public_pem})),
        Case("sign-key-missing", build_with("--sign", "@nokey.pem")),
    ]


def archive_cases() -> list[Case]:
    """Hostile .tar.gz files given to ``stackc verify`` and ``stackc inspect``."""
    def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for info, data in members:
                if data is not None:
                    info.size = len(data)
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
        return buffer.getvalue()

    def member(name, kind=tarfile.REGTYPE, data: bytes | None = b"x", linkname=""):
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, linkname
        return info, (data if kind == tarfile.REGTYPE else None)

    archives = {
        "dotdot": tar_bytes([member("b", tarfile.DIRTYPE), member("b/../../escaped.txt")]),
        "absolute": tar_bytes([member("/tmp/stackc-escaped.txt")]),
        "symlink-out": tar_bytes([member("b", tarfile.DIRTYPE), member("b/link", tarfile.SYMTYPE, linkname="/etc/passwd")]),
        "symlink-relative-out": tar_bytes([member("b", tarfile.DIRTYPE), member("b/l", tarfile.SYMTYPE, linkname="../../x")]),
        "hardlink": tar_bytes([member("b", tarfile.DIRTYPE), member("b/h", tarfile.LNKTYPE, linkname="/etc/passwd")]),
        "device": tar_bytes([member("b", tarfile.DIRTYPE), member("b/dev", tarfile.CHRTYPE)]),
        "fifo": tar_bytes([member("b", tarfile.DIRTYPE), member("b/fifo", tarfile.FIFOTYPE)]),
        "two-tops": tar_bytes([member("a", tarfile.DIRTYPE), member("b", tarfile.DIRTYPE)]),
        "file-top": tar_bytes([member("manifest.json", data=b"{}")]),
        "empty-archive": tar_bytes([]),
        "no-manifest": tar_bytes([member("b", tarfile.DIRTYPE), member("b/x.txt")]),
        "manifest-not-json": tar_bytes([member("b", tarfile.DIRTYPE), member("b/manifest.json", data=b"{nope")]),
        "manifest-list": tar_bytes([member("b", tarfile.DIRTYPE), member("b/manifest.json", data=b"[]")]),
        "not-gzip": b"plain bytes, not gzip",
        "truncated-gzip": gzip.compress(b"x" * 5000, mtime=0)[:40],
        "gzip-not-tar": gzip.compress(b"x" * 5000, mtime=0),
        # issue 15: bombs and manifests that must be refused before they are used
        "member-bomb-256mib": _bomb(member("b", tarfile.DIRTYPE)[0], "b/artifacts/zeros.bin", 256),
        "manifest-bomb": _bomb(member("b", tarfile.DIRTYPE)[0], "b/manifest.json", 40, fill=b" "),
        "duplicate-member": tar_bytes([member("b", tarfile.DIRTYPE), member("b/manifest.json", data=b"{}"),
                                       member("b/manifest.json", data=b'{"schema_version": 1}')]),
        "manifest-deep": tar_bytes([member("b", tarfile.DIRTYPE),
                                    member("b/manifest.json", data=b"[" * 100_000 + b"]" * 100_000)]),
        "manifest-duplicate-key": tar_bytes([member("b", tarfile.DIRTYPE),
                                             member("b/manifest.json", data=b'{"bundle": {}, "bundle": {}}')]),
        "manifest-int-5000-digits": tar_bytes([member("b", tarfile.DIRTYPE),
                                               member("b/manifest.json", data=b'{"size": ' + b"9" * 5000 + b"}")]),
        "manifest-artifacts-string": tar_bytes([member("b", tarfile.DIRTYPE),
                                                member("b/manifest.json", data=b'{"schema_version": 1, "artifacts": "abc"}')]),
    }
    cases = []
    for name, data in archives.items():
        for command in ("verify", "inspect"):
            def make(work: Path, data=data, command=command) -> list[str]:
                path = work / "bundle.tar.gz"
                path.write_bytes(data)
                return [command, str(path)]
            cases.append(Case(f"archive-{name}-{command}", make))
    return cases


def _bomb(top: tarfile.TarInfo, name: str, mib: int, fill: bytes = b"\0") -> bytes:
    """A member declaring ``mib`` MiB of ``fill``, as concatenated gzip members of ~1 KB per MiB."""
    bomb = tarfile.TarInfo(name)
    bomb.size = mib * 2**20
    chunk = gzip.compress(fill * 2**20, mtime=0)
    return (gzip.compress(top.tobuf(tarfile.PAX_FORMAT) + bomb.tobuf(tarfile.PAX_FORMAT), mtime=0)
            + chunk * mib + gzip.compress(bytes(1024), mtime=0))


CASES = model_cases() + config_cases() + option_cases() + archive_cases()
BY_NAME = {c.name: c for c in CASES}


def test_corpus_holds_at_least_200_hostile_inputs():
    assert len(CASES) >= 200
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.fixture(scope="module")
def corpus_results(tmp_path_factory):
    """Run every case once; return {name: (exit code, stderr, leftovers outside the work folder)}."""
    root = tmp_path_factory.mktemp("hostile")
    sentinel_dir = root / "sentinel"
    sentinel_dir.mkdir()
    results = {}
    for case in CASES:
        work = root / case.name
        (work / "tmp").mkdir(parents=True)
        args = case.make(work)
        args = [a.replace("__ABS__", str(work / "model" / "w.bin")) for a in args]
        _rewrite_abs_location(work)
        before = sorted(p.name for p in root.iterdir())
        saved_tempdir, tempfile.tempdir = tempfile.tempdir, str(work / "tmp")
        cwd = os.getcwd()
        os.chdir(work)
        try:
            invocation = run_stackc(*args)
        finally:
            os.chdir(cwd)
            tempfile.tempdir = saved_tempdir
        leftovers = sorted(str(p.relative_to(work)) for p in (work / "tmp").rglob("*"))
        out = work / "out"
        if out.exists():
            leftovers += [f"out/{p.name}" for p in out.iterdir()]
        leftovers += [f"../{n}" for n in sorted(p.name for p in root.iterdir()) if n not in before]
        if case.builds:
            leftovers = [p for p in leftovers if not p.startswith("out/model-")]
        results[case.name] = (invocation, leftovers)
    return results


def _rewrite_abs_location(work: Path) -> None:
    """The absolute-path case points at a real file beside the model, by absolute path."""
    model_path = work / "model" / "model.onnx"
    if not model_path.exists():
        return
    model = onnx.load(str(model_path), load_external_data=False)
    changed = False
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.value == "__ABS__":
                entry.value = str(work / "model" / "w.bin")
                (work / "model" / "w.bin").write_bytes(tiny_model().graph.initializer[0].raw_data)
                changed = True
    if changed:
        onnx.save(model, str(model_path))


@pytest.mark.parametrize("case", [c.name for c in CASES])
def test_hostile_input_fails_with_one_clear_line_and_documented_code(case, corpus_results):
    invocation, leftovers = corpus_results[case]
    context = f"{case}: exit {invocation.exit_code}\nstderr: {invocation.stderr}\nexception: {invocation.exception!r}"
    assert invocation.exception is None, context
    if BY_NAME[case].builds:
        assert invocation.exit_code == 0 and leftovers == [], context
        return
    assert invocation.exit_code in EXPECTED_CODES, context
    assert "Traceback" not in invocation.stderr + invocation.stdout, context
    if invocation.error_lines:
        assert len(invocation.error_lines) == 1, context
        assert len(invocation.error_lines[0]) < 600, context
    else:  # click's own usage errors
        assert invocation.exit_code == 2 and "Error:" in invocation.stderr, context
    assert leftovers == [], f"{case} wrote outside its work folder or left files: {leftovers}"


def test_corpus_summary_counts_exit_codes(corpus_results, capsys):
    """Not an assertion of its own: prints the counts the issue's closing note asks for."""
    counts: dict[int, int] = {}
    for invocation, _ in corpus_results.values():
        counts[invocation.exit_code] = counts.get(invocation.exit_code, 0) + 1
    with capsys.disabled():
        print(f"\nhostile corpus: {len(corpus_results)} inputs, exit codes {dict(sorted(counts.items()))}")
        if os.environ.get("STACKC_CORPUS_VERBOSE"):
            for name, (invocation, _) in corpus_results.items():
                line = (invocation.error_lines or invocation.stderr.splitlines()[-1:] or [""])[0]
                print(f"  {invocation.exit_code} {name}: {line[:200]}")
    assert set(counts) <= EXPECTED_CODES | {0}
    assert counts.get(0, 0) == sum(c.builds for c in CASES)


@pytest.mark.parametrize("case", ["nan-weights", "one-nan-weight"])
def test_nan_weights_are_refused_as_bad_input_naming_the_tensor(case, corpus_results):
    invocation, _ = corpus_results[case]
    assert invocation.exit_code == 3
    assert "'w'" in invocation.error_lines[0] and "NaN" in invocation.error_lines[0]


@pytest.mark.parametrize("case", ["external-data-dotdot", "external-data-absolute", "external-data-symlink-out"])
def test_external_data_outside_the_model_folder_is_refused(case, corpus_results):
    invocation, _ = corpus_results[case]
    assert invocation.exit_code == 3
    assert "outside the model's folder" in invocation.error_lines[0]
