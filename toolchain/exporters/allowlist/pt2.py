"""A ``.pt2`` checked member by member before ``torch.export.load`` opens it.

``torch.export.load`` is more than a reader: a zip in the pre-2.7 layout (a top-level ``version``,
``serialized_*`` members) is retried with ``torch.load(weights_only=False)``; ``data/aotinductor/``
members are extracted to /tmp and dlopened; ``opaque_obj_`` constants are ``pickle.loads``-ed; pickled
weights and sample inputs fall back to full unpickling. So the archive must be exactly
``torch.export.save``'s current layout, under one root folder:

    archive_format (= pt2), archive_version, byteorder, version or .data/version, .data/serialization_id,
    models/<m>.json, data/sample_inputs/<m>.pt, data/weights/<m>_weights_config.json,
    data/weights/weight_<n>, data/constants/<m>_constants_config.json, data/constants/tensor_<n>, extra/<name>

Every pickle in it (sample inputs, weights or constants marked ``use_pickle``) must be what
``torch.load(weights_only=True)`` reads (``pickles``), and every program must pass ``pt2_program``.
"""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from ...errors import InputError
from .pickles import safe_globals, torch_save_refusal
from .pt2_program import program_refusal

_NAME = r"[A-Za-z0-9_]+"
_MEMBER = re.compile(
    rf"archive_format|archive_version|byteorder|version|\.data/version|\.data/serialization_id"
    rf"|models/{_NAME}\.json|data/sample_inputs/{_NAME}\.pt"
    rf"|data/weights/{_NAME}_weights_config\.json|data/weights/weight_\d+"
    rf"|data/constants/{_NAME}_constants_config\.json|data/constants/tensor_\d+"
    rf"|extra/[A-Za-z0-9_.-]+")
_ROOT = re.compile(r"(?!\.+/)[A-Za-z0-9_.-]+/")
_PAYLOAD = {"data/weights/": re.compile(r"weight_\d+"), "data/constants/": re.compile(r"tensor_\d+")}
LEGACY = re.compile(r"version|([^/]+/)?(serialized_\w+\.(pt|json)|data/(weights|constants)/\w+\.pt)")
NATIVE = re.compile(r"\.(so|dll|dylib|pyd|cubin|fatbin|ptx|hsaco|o|a|lib|exe)(\.[0-9]+)*$", re.IGNORECASE)
MAX_JSON_BYTES = 512 << 20


def check_pt2(path: Path) -> None:
    """Refuse (InputError, exit 3, naming the member) anything outside the supported layout; nothing is loaded."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            root = _check_members(path.name, [i.filename for i in archive.infolist()])
            members = {i.filename[len(root):]: i for i in archive.infolist()}
            if "archive_format" not in members or archive.read(members["archive_format"]).strip() != b"pt2":
                raise InputError(f"{path.name}: member '{root}archive_format' does not say pt2")
            allowed = safe_globals()
            models = [rel[len("models/"):-len(".json")] for rel in members if rel.startswith("models/")]
            if not models:
                raise InputError(f"{path.name}: no '{root}models/<name>.json' member; not a torch.export.save archive")
            for model in models:
                for rel in (f"data/sample_inputs/{model}.pt", f"data/weights/{model}_weights_config.json",
                            f"data/constants/{model}_constants_config.json"):
                    if rel not in members:
                        raise InputError(f"{path.name}: model '{model}' has no member '{root}{rel}'")
                program = _json(path.name, archive, members[f"models/{model}.json"])
                reason = program_refusal(program)
                if reason is not None:
                    raise InputError(f"{path.name}: member '{root}models/{model}.json' {reason}; stackc refuses it "
                                     "unloaded (a torch.export graph of aten/prims ops is what stackc reads)")
                _refuse_pickle(path.name, root + f"data/sample_inputs/{model}.pt",
                               torch_save_refusal(archive.read(members[f"data/sample_inputs/{model}.pt"]), allowed))
                for folder, kind in (("data/weights/", "weights"), ("data/constants/", "constants")):
                    config = _json(path.name, archive, members[f"{folder}{model}_{kind}_config.json"])
                    _check_payloads(path.name, archive, root, folder, config, members, allowed,
                                    f"{root}{folder}{model}_{kind}_config.json")
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise InputError(f"{path.name}: not a readable zip archive ({type(e).__name__})") from None


def _check_members(label: str, names: list[str]) -> str:
    for name in names:
        if NATIVE.search(name.rsplit("/", 1)[-1]):
            raise InputError(f"{label}: member '{name}' is native code; stackc never loads a library from a model "
                             "(an AOTInductor package is not a source: save with torch.export.save)")
        if LEGACY.fullmatch(name):
            raise InputError(f"{label}: member '{name}' belongs to the legacy torch.export layout, which torch "
                             "reads with a full unpickle (arbitrary code); stackc refuses it unloaded "
                             "(re-save with a current torch.export.save)")
    roots = {name.split("/", 1)[0] for name in names}
    root = f"{roots.pop()}/" if len(roots) == 1 else None
    if root is not None and not _ROOT.fullmatch(root):
        root = None
    for name in names:
        if root is None or not name.startswith(root) or not _MEMBER.fullmatch(name[len(root):]):
            raise InputError(f"{label}: member '{name}' is not part of the torch.export.save layout stackc reads "
                             "(legacy, AOTInductor and hand-made members are refused unloaded); "
                             "re-save with torch.export.save")
    return root


def _json(label: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo):
    if info.file_size > MAX_JSON_BYTES:
        raise InputError(f"{label}: member '{info.filename}' is {info.file_size} bytes of JSON (over {MAX_JSON_BYTES >> 20} MiB)")
    try:
        return json.loads(archive.read(info))
    except (ValueError, RecursionError) as e:
        raise InputError(f"{label}: member '{info.filename}' is not readable JSON ({type(e).__name__})") from None


def _check_payloads(label, archive, root, folder, config, members, allowed, config_name) -> None:
    """Each weight/constant entry names a ``weight_<n>``/``tensor_<n>`` member; pickled ones must be weights-only."""
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise InputError(f"{label}: member '{config_name}' has no 'config' table")
    for fqn, meta in entries.items():
        name = meta.get("path_name") if isinstance(meta, dict) else None
        if not isinstance(name, str) or not _PAYLOAD[folder].fullmatch(name) or folder + name not in members:
            raise InputError(f"{label}: '{fqn}' in member '{config_name}' points at '{name}', which is not a "
                             f"{_PAYLOAD[folder].pattern} member (custom and opaque Python objects are refused)")
        if meta.get("use_pickle"):
            _refuse_pickle(label, root + folder + name,
                           torch_save_refusal(archive.read(members[folder + name]), allowed))


def _refuse_pickle(label: str, member: str, reason: str | None) -> None:
    if reason is not None:
        raise InputError(f"{label}: member '{member}' needs a full unpickle ({reason}), which can run arbitrary code; "
                         "stackc refuses it unloaded (save tensors only, e.g. re-run torch.export.save)")
