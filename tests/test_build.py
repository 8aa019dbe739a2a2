"""``stackc build`` end to end: every fixture architecture, every world, parity proven in real runtimes.

Each (world, model) pair is built once (a module-scoped fixture) and then checked twice: through
the manifest's parity rows, and by re-running the shipped artifacts ourselves in onnxruntime /
OpenVINO on the bundle's own samples against its stored reference outputs. Every architecture goes
through the foundation's formats; every shipped world is also built whole once.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import (FIXTURES, FOUNDATION_FORMATS, assert_close_by_policy, assert_user_error, build_bundle,
                      fixture_model, foundation_world, make_named_model, read_npz, run_bundle_artifact,
                      run_in_onnxruntime, run_stackc, shipped_target_data, write_toml)
from toolchain.targets import Target, available_targets, load_target

ALL_MODELS = sorted(FIXTURES)
# Every architecture through the foundation's formats (ONNX, ORT format, OpenVINO IR) of these worlds.
FOUNDATION_BUILDS = {"edge-desktop": ALL_MODELS, "cloud": ALL_MODELS, "edge-iot": ALL_MODELS}
# Every shipped world built whole, all its variants (tests/test_registry_coverage.py checks the keys).
WORLD_BUILDS = {"edge-desktop": "resnet_tiny", "cloud": "resnet_tiny", "edge-iot": "resnet_tiny",
                "edge-mobile": "mobilenet_tiny", "edge-mcu": "resnet_tiny"}


def _cases():
    cases = [(world, model, "foundation") for world, models in FOUNDATION_BUILDS.items() for model in models]
    for world, model in WORLD_BUILDS.items():
        whole_is_foundation = {v.format for v in load_target(world).variants} <= set(FOUNDATION_FORMATS)
        if not (whole_is_foundation and (world, model, "foundation") in cases):
            cases.append((world, model, "whole"))
    return cases


CASES = _cases()


def _is_dynamic(dim) -> bool:
    return not isinstance(dim, int)


@dataclass
class Built:
    world: Target
    model: str
    bundle: Path
    manifest: dict


_BUILDS: dict[tuple[str, str, str], Built] = {}


def _build_once(case: tuple[str, str, str], tmp_path_factory) -> Built:
    """Each case is built once per session, whichever fixture asks for it first."""
    if case not in _BUILDS:
        world, model, kind = case
        out = tmp_path_factory.mktemp(f"{model}-{world}")
        target = str(foundation_world(world, out / "world")) if kind == "foundation" else world
        result = build_bundle(fixture_model(model), target, out / "out")
        _BUILDS[case] = Built(load_target(target), model, Path(result["bundle"]), result["manifest"])
    return _BUILDS[case]


@pytest.fixture(scope="module", params=CASES, ids=[f"{w}-{m}-{k}" for w, m, k in CASES])
def built(request, tmp_path_factory) -> Built:
    return _build_once(request.param, tmp_path_factory)


# cloud keeps dynamic dims: its builds of the models that have them
DYNAMIC_CLOUD_CASES = [c for c in CASES if c[0] == "cloud" and c[2] == "foundation"
                       and not all(isinstance(d, int) for i in FIXTURES[c[1]]["inputs"] for d in i["shape"])]


@pytest.fixture(scope="module", params=DYNAMIC_CLOUD_CASES, ids=[f"{w}-{m}-{k}" for w, m, k in DYNAMIC_CLOUD_CASES])
def built_dynamic_cloud(request, tmp_path_factory) -> Built:
    return _build_once(request.param, tmp_path_factory)


def _runnable(manifest: dict) -> list[dict]:
    """Artifacts this module re-runs itself; other formats are re-run by their own backend tests."""
    return [a for a in manifest["artifacts"] if a["format"] in FOUNDATION_FORMATS]


def test_every_variant_ships_an_artifact_whose_every_output_passed_parity(built):
    model, bundle, manifest = built.model, built.bundle, built.manifest
    variants = {v.name: v for v in built.world.variants}
    assert [a["variant"] for a in manifest["artifacts"]] == list(variants)
    assert not manifest.get("missing")
    outputs = [o["name"] for o in FIXTURES[model]["outputs"]]
    assert manifest["preparation"]["parity"]["passed"] is True
    for artifact in manifest["artifacts"]:
        parity = artifact["parity"]
        assert parity["passed"] is True, parity
        assert [row["name"] for row in parity["outputs"]] == outputs
        assert all(row["passed"] and row["max_abs"] is not None and "cosine" in row for row in parity["outputs"])
        assert parity["policy"] == variants[artifact["variant"]].parity.as_dict()
        assert artifact["format"] == variants[artifact["variant"]].format
        assert (bundle / artifact["path"]).exists()  # a file, or a folder such as .mlpackage
    assert manifest["parity"]["allowed_failure"] is False


def test_shipped_artifacts_rerun_in_their_runtime_reproduce_the_stored_reference(built):
    model, bundle, manifest = built.model, built.bundle, built.manifest
    samples = read_npz(bundle / "parity" / "samples.npz")
    reference = read_npz(bundle / "parity" / "reference.npz")
    assert sorted(samples) == sorted(i["name"] for i in FIXTURES[model]["inputs"])
    assert sorted(reference) == sorted(o["name"] for o in FIXTURES[model]["outputs"])
    np.testing.assert_allclose(  # the stored reference is the source model's output on the stored samples
        run_in_onnxruntime(fixture_model(model), samples)[next(iter(reference))], next(iter(reference.values())),
        rtol=0, atol=0)
    for artifact in _runnable(manifest):
        actual = run_bundle_artifact(bundle, artifact, samples)
        assert_close_by_policy(reference, actual, artifact["parity"]["policy"], f"{built.world.name}/{artifact['variant']}")


def _artifact_input_shapes(fmt: str, path: Path) -> list[list]:
    if fmt == "openvino":
        import openvino as ov

        return [[d.get_length() if d.is_static else None for d in port.get_partial_shape()]
                for port in ov.Core().read_model(str(path)).inputs]
    import onnxruntime as ort

    return [i.shape for i in ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()]


def test_artifact_inputs_are_static_in_edge_worlds_and_keep_dynamic_dims_in_cloud(built):
    declared = [i["shape"] for i in FIXTURES[built.model]["inputs"]]
    for artifact in _runnable(built.manifest):
        shapes = _artifact_input_shapes(artifact["format"], built.bundle / artifact["path"])
        if built.world.shapes.static:
            assert all(isinstance(d, int) for shape in shapes for d in shape), (artifact["variant"], shapes)
        else:
            for want, got in zip(declared, shapes):
                assert [_is_dynamic(d) for d in want] == [_is_dynamic(d) for d in got], (artifact["variant"], got)


def _fresh_samples(model: str, dims: dict[str, int]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    samples = {}
    for spec in FIXTURES[model]["inputs"]:
        shape = [d if isinstance(d, int) else dims[d] for d in spec["shape"]]
        if spec["dtype"] == "int64":
            samples[spec["name"]] = rng.integers(0, 16, size=shape).astype(np.int64)
        else:
            samples[spec["name"]] = rng.standard_normal(shape).astype(np.float32)
    return samples


def test_cloud_artifacts_run_at_another_batch_and_length_than_parity_used(built_dynamic_cloud):
    built = built_dynamic_cloud
    model = built.model
    samples = _fresh_samples(model, {"batch": 3, "seq": 7, "time": 5})
    reference = run_in_onnxruntime(fixture_model(model), samples)
    for artifact in _runnable(built.manifest):
        actual = run_bundle_artifact(built.bundle, artifact, samples)
        assert_close_by_policy(reference, actual, artifact["parity"]["policy"], f"cloud/{artifact['variant']} batch 3")


def test_every_shipped_world_is_built_whole():
    assert set(available_targets()) <= set(WORLD_BUILDS)


# -- input names with ':', '/', '.' and --shape ---------------------------------------------------


def test_shape_names_with_colon_slash_and_dot_split_at_the_last_equals_and_fix_shared_dims(tmp_path):
    model = make_named_model(tmp_path / "named.onnx")
    world = foundation_world("edge-iot", tmp_path / "world")  # ORT format + OpenVINO IR
    result = build_bundle(model, world, tmp_path / "out", "--shape", "serving_default_input_2:0=3,4")
    bundle, manifest = Path(result["bundle"]), result["manifest"]
    samples = read_npz(bundle / "parity" / "samples.npz")
    assert {k: v.shape for k, v in samples.items()} == {"serving_default_input_2:0": (3, 4), "gpu_0/data_0": (3, 4)}
    fix = next(s for s in manifest["preparation"]["steps"] if s["id"] == "fix.shapes")
    assert fix["notes"]["fixed"] == {"serving_default_input_2:0": [3, 4], "gpu_0/data_0": [3, 4]}
    reference = read_npz(bundle / "parity" / "reference.npz")
    assert list(reference) == ["logits/out.0:0"]
    for artifact in manifest["artifacts"]:
        assert artifact["parity"]["passed"]
        assert _artifact_input_shapes(artifact["format"], bundle / artifact["path"]) == [[3, 4], [3, 4]]
        actual = run_bundle_artifact(bundle, artifact, samples)
        assert_close_by_policy(reference, actual, artifact["parity"]["policy"], artifact["variant"])
    assert {a["format"] for a in manifest["artifacts"]} == {"ort", "openvino"}


def test_an_input_name_containing_equals_is_split_at_the_last_one():
    from toolchain.onnxlib.shapes import parse_shape

    assert parse_shape("serving_default_input_2:0=1,4") == ("serving_default_input_2:0", (1, 4))
    assert parse_shape("gpu_0/data_0=2x4") == ("gpu_0/data_0", (2, 4))
    assert parse_shape("a=b.c=1,2") == ("a=b.c", (1, 2))
    assert parse_shape("1,3,8,8") == ("", (1, 3, 8, 8))


# -- --inputs samples ------------------------------------------------------------------------------


@pytest.mark.parametrize("world", ["edge-desktop", "cloud"])
def test_inputs_file_is_used_as_the_parity_samples_and_stored_in_the_bundle(tmp_path, world):
    given = {"input_ids": np.arange(10, dtype=np.int64).reshape(2, 5) % 16,
             "attention_mask": np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], np.int64)}
    np.savez(tmp_path / "samples.npz", **given)
    world = foundation_world(world, tmp_path / "world")
    result = build_bundle(fixture_model("transformer_tiny"), world, tmp_path / "out", "--inputs", tmp_path / "samples.npz")
    bundle, manifest = Path(result["bundle"]), result["manifest"]
    stored = read_npz(bundle / "parity" / "samples.npz")
    assert sorted(stored) == sorted(given) and all(np.array_equal(stored[k], given[k]) for k in given)
    assert manifest["parity"]["inputs_from"] == "file"
    reference = read_npz(bundle / "parity" / "reference.npz")
    assert reference["last_hidden_state"].shape == (2, 5, 32)
    assert all(a["parity"]["passed"] and a["parity"]["outputs"][0]["shape"] == [2, 5, 32] for a in manifest["artifacts"])


def test_inputs_file_that_does_not_fit_the_model_fails_with_exit_3(tmp_path):
    np.savez(tmp_path / "samples.npz", tokens=np.zeros((1, 4), np.int64))
    failed = run_stackc("build", fixture_model("transformer_tiny"), "-t", "edge-desktop", "--out", tmp_path / "out",
                        "--inputs", tmp_path / "samples.npz")
    assert_user_error(failed, 3, "input_ids", "tokens")
    assert not (tmp_path / "out").exists()


# -- the parity gate -------------------------------------------------------------------------------

@pytest.fixture
def strict_world(tmp_path) -> Path:
    """edge-desktop's ONNX variant, plus an OpenVINO variant storing fp16 weights judged with zero tolerance:
    a real disagreement between real runtimes, no mocks."""
    data = shipped_target_data("edge-desktop")
    data["name"] = "strict-world"
    data["variants"] = [v for v in data["variants"] if v["format"] in ("onnx", "openvino")]
    openvino = next(v for v in data["variants"] if v["format"] == "openvino")
    openvino.update(name="openvino-fp16w", parity={"max_abs": 0.0, "max_rel": 0.0, "scale_rel": 0.0, "min_cosine": 1.0},
                    options={"weights": "fp16"})
    return write_toml(tmp_path / "strict-world.toml", data)


def test_build_fails_with_exit_6_and_a_table_naming_the_failing_output_and_writes_no_bundle(tmp_path, strict_world):
    out = tmp_path / "out"
    failed = run_stackc("build", fixture_model("detector_tiny"), "-t", strict_world, "--out", out)
    headline = assert_user_error(failed, 6, "1 artifact(s) failed parity", "--allow-parity-failure")
    assert "openvino-fp16w" not in headline  # the table follows the one-line headline
    lines = failed.stderr.splitlines()
    table = [line.split() for line in lines[lines.index(headline) + 1:]]
    assert ["artifact", "output"] == table[0][:2]
    failing = {(row[0], row[1]) for row in table[1:] if row}
    assert failing == {("openvino-fp16w", "boxes"), ("openvino-fp16w", "scores")}
    assert [p.name for p in out.iterdir()] == []  # no bundle, no archive, no partial folder


def test_allow_parity_failure_writes_the_bundle_and_records_the_failure(tmp_path, strict_world):
    result = build_bundle(fixture_model("detector_tiny"), strict_world, tmp_path / "out", "--allow-parity-failure")
    manifest = result["manifest"]
    assert result["parity_failed"] is True
    assert manifest["parity"]["allowed_failure"] is True
    verdicts = {a["variant"]: a["parity"]["passed"] for a in manifest["artifacts"]}
    assert verdicts == {"onnx-fp32": True, "openvino-fp16w": False}
    failed = next(a for a in manifest["artifacts"] if a["variant"] == "openvino-fp16w")
    assert failed["conversion"]["weights"] == "fp16"
    assert all(not row["passed"] and "outside max_abs 0" in row["reason"] for row in failed["parity"]["outputs"])
    assert run_stackc("verify", result["bundle"]).exit_code == 0
