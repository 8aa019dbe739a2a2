"""Pickles read by their opcodes alone: what ``torch.load(weights_only=True)`` would accept, never unpickled.

A pickle is a program; running it to find out is the danger. The opcode stream is parsed
(``pickletools.genops`` executes nothing) and held to what torch's weights-only unpickler implements:
its opcodes (no ``STACK_GLOBAL``, ``INST``, ``OBJ``, extension codes) and its built-in safe set of
globals (tensor rebuild functions, storages, dtypes; never the process-wide ``add_safe_globals``).
``REDUCE`` / ``NEWOBJ`` / ``BUILD`` can only apply what a ``GLOBAL`` pushed, so a stream whose every
global is safe calls nothing else, whichever unpickler later reads it.
"""
from __future__ import annotations

import _compat_pickle
import io
import pickletools
import re
import zipfile

# the opcodes torch/_weights_only_unpickler.py implements (torch 2.5 to 2.13)
WEIGHTS_ONLY_OPCODES = frozenset({
    "PROTO", "STOP", "GLOBAL", "NEWOBJ", "REDUCE", "BUILD", "MARK", "APPEND", "APPENDS", "SETITEM", "SETITEMS",
    "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_TUPLE", "EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET", "NONE",
    "NEWFALSE", "NEWTRUE", "BININT", "BININT1", "BININT2", "LONG1", "BINFLOAT", "BINUNICODE", "SHORT_BINSTRING",
    "BINPERSID", "BINGET", "LONG_BINGET", "BINPUT", "LONG_BINPUT",
})
# torch.save's zip layout (under one root folder): the pickle, its raw storages, and bookkeeping records
_SAVE_MEMBER = re.compile(r"[^/]+/(data\.pkl|data/\d+|version|\.data/version|byteorder|\.data/serialization_id"
                          r"|\.format_version|\.storage_alignment)")
MAX_PICKLE_BYTES = 64 << 20  # a weights-only pickle holds structure; tensor bytes live in data/<n>


def safe_globals() -> frozenset[str]:
    """torch's own weights-only safe set, as ``module.name`` strings."""
    from torch._weights_only_unpickler import _get_allowed_globals

    return frozenset(_get_allowed_globals())


def pickle_refusal(data: bytes, allowed: frozenset[str]) -> str | None:
    """Why a weights-only load would refuse this pickle (the opcode or global it needs), or None."""
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name not in WEIGHTS_ONLY_OPCODES:
                return f"pickle opcode {opcode.name}"
            if opcode.name == "GLOBAL":
                module, name = str(arg).split(" ", 1)
                module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
                module = _compat_pickle.IMPORT_MAPPING.get(module, module)
                if f"{module}.{name}" not in allowed:
                    return f"global {module}.{name}"
    except Exception as e:  # genops raises ValueError on a torn stream, others on nonsense
        return f"not a readable pickle ({type(e).__name__})"
    return None


def torch_save_refusal(data: bytes, allowed: frozenset[str]) -> str | None:
    """The same for a ``torch.save`` file: its zip layout, then its ``data.pkl``. The pre-1.6 raw format
    (several pickles in a row) and TorchScript archives (which torch.load hands to torch.jit.load) are refused."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        return "not torch.save's zip format (the legacy raw-pickle format is not read)"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            roots = {info.filename.split("/", 1)[0] for info in infos}
            odd = next((i.filename for i in infos if not _SAVE_MEMBER.fullmatch(i.filename)), None)
            if odd is not None or len(roots) != 1:
                return f"an unexpected record '{odd or sorted(roots)[-1]}' inside the torch.save archive"
            pickled = next((i for i in infos if i.filename.endswith("/data.pkl")), None)
            if pickled is None:
                return "a torch.save archive without data.pkl"
            if pickled.file_size > MAX_PICKLE_BYTES:
                return f"a {pickled.file_size}-byte data.pkl (over {MAX_PICKLE_BYTES >> 20} MiB)"
            return pickle_refusal(archive.read(pickled), allowed)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        return f"a damaged torch.save archive ({type(e).__name__})"
