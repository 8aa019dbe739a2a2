"""Make an ORT-format file's bytes a function of its model alone.

ONNX Runtime writes the session's kernel type-string resolver (op id -> type string -> argument
list) in the iteration order of abseil hash maps, whose per-table salt is the address of the map's
heap block. So the same model saved twice gives different bytes whenever the process's heap history
differs: another work-folder path length, another environment (a Ray worker's), address randomisation.
Only that table moves (the graph, its nodes and initializers come out identical); ORT reads it back
into a map, so its order means nothing. ``canonicalize`` rewrites it sorted, in front of the
untouched rest of the file (the model), so every run writes the same bytes.

Layout relied on (FlatBuffers build back to front; checked, else the file is left as it is): the
file is ``root -> InferenceSession {ort_version, model, kernel_type_str_resolver}``, the resolver was
built last, so everything from the Model table (or its vtable just before it) to the end is the model
and the version string, and everything in front of it is the resolver and the session table.
"""
from __future__ import annotations

from pathlib import Path

IDENTIFIER = b"ORTM"
# InferenceSession fields by vtable offset: ort_version 4, model 6, session_state 8 (deprecated), resolver 10
_VERSION, _MODEL, _STATE, _RESOLVER = 4, 6, 8, 10
_LARGEST_ALIGNMENT = 64


def canonicalize(path: Path) -> bool:
    """Rewrite ``path`` with its resolver table sorted; False (file untouched) if its layout is not the known one.

    Only the front changes: the new front is built against a stand-in of the tail's length, then
    written before the bytes read, so the model behind it is never copied (an 88 MB file took 0.45 s
    when it was copied whole at every step)."""
    data = Path(path).read_bytes()
    parsed = _parse(data)
    if parsed is None:
        return False
    version, model, tail_start, resolver = parsed
    front = _rebuild_front(data, version, model, tail_start, resolver)
    if front != data[:tail_start]:
        with open(path, "wb") as handle:
            handle.write(front)
            handle.write(memoryview(data)[tail_start:])
    return True


def _table(data: bytes, pos: int):
    from flatbuffers.table import Table

    return Table(data, pos)  # any buffer: flatbuffers reads it with struct.unpack_from


def _field(tab, slot: int) -> int | None:
    """Absolute position of the object an offset field points to, or None when absent."""
    o = tab.Offset(slot)
    return tab.Indirect(tab.Pos + o) if o else None


def _vector(tab, slot: int) -> list[int]:
    o = tab.Offset(slot)
    if not o:
        return []
    start, n = tab.Vector(o), tab.VectorLen(o)
    return [tab.Indirect(start + 4 * i) for i in range(n)]


def _parse(data: bytes):
    from flatbuffers import encode, number_types as N

    buf = memoryview(data)
    if len(data) < 8 or data[4:8] != IDENTIFIER:
        return None
    session = _table(buf, encode.Get(N.UOffsetTFlags.packer_type, buf, 0))
    version, model, resolver_pos = (_field(session, s) for s in (_VERSION, _MODEL, _RESOLVER))
    if None in (version, model, resolver_pos) or session.Offset(_STATE):
        return None
    vtable = model - encode.Get(N.SOffsetTFlags.packer_type, buf, model)
    tail_start = min(model, vtable)
    if not (session.Pos < resolver_pos < tail_start <= version) or session.Pos > tail_start:
        return None
    return version, model, tail_start, _resolver_entries(buf, resolver_pos, tail_start)


def _resolver_entries(buf, pos: int, tail_start: int) -> dict | None:
    """{op id: {type string: [(arg type, index), ...]}} read from the resolver table."""
    entries = {}
    for entry_pos in _vector(_table(buf, pos), 4):
        entry = _table(buf, entry_pos)
        op_id = entry.String(entry.Offset(4) + entry.Pos).decode()
        args = {}
        for kts_pos in _vector(entry, 6):
            kts = _table(buf, kts_pos)
            name = kts.String(kts.Offset(4) + kts.Pos).decode()
            args[name] = [_arg(buf, p) for p in _vector(kts, 6)]
        entries[op_id] = args
    return entries


def _arg(buf, pos: int) -> tuple[int, int]:
    from flatbuffers import number_types as N

    tab = _table(buf, pos)
    return (tab.GetSlot(4, 0, N.Uint8Flags), tab.GetSlot(6, 0, N.Uint32Flags))


def _rebuild_front(data: bytes, version: int, model: int, tail_start: int, entries: dict) -> bytes:
    """The new front for the untouched tail (model, version string): the sorted resolver and the session table."""
    import flatbuffers

    builder = flatbuffers.Builder(0)
    # the builder counts offsets from the buffer's end and never reads the tail: zeros of its length stand
    # in for it; the new front is the old one reordered, so the room in front never has to grow
    room = 2 * tail_start + 1024
    builder.Bytes, builder.head = bytearray(room + len(data) - tail_start), room
    # the tail's alignment is counted from the buffer's end: a length that is a multiple of the largest
    # alignment keeps every tail object aligned, whatever the length ORT wrote (it moves with the resolver's order)
    builder.minalign = _LARGEST_ALIGNMENT
    at = lambda pos: len(data) - pos  # noqa: E731 - a tail object's offset as the builder counts it
    resolver = _build_resolver(builder, entries)
    builder.StartObject(4)
    builder.PrependUOffsetTRelativeSlot(3, resolver, 0)
    builder.PrependUOffsetTRelativeSlot(1, at(model), 0)
    builder.PrependUOffsetTRelativeSlot(0, at(version), 0)
    builder.Finish(builder.EndObject(), file_identifier=IDENTIFIER)
    return bytes(builder.Bytes[builder.Head():len(builder.Bytes) - (len(data) - tail_start)])


def _offsets(builder, items: list[int]) -> int:
    builder.StartVector(4, len(items), 4)
    for item in reversed(items):
        builder.PrependUOffsetTRelative(item)
    return builder.EndVector()


def _build_resolver(builder, entries: dict) -> int:
    built = []
    for op_id in sorted(entries):
        per_type = []
        for name in sorted(entries[op_id]):
            args = []
            for arg_type, index in entries[op_id][name]:
                builder.StartObject(2)
                builder.PrependUint32Slot(1, index, 0)
                builder.PrependUint8Slot(0, arg_type, 0)
                args.append(builder.EndObject())
            args_vector, name_offset = _offsets(builder, args), builder.CreateString(name)
            builder.StartObject(2)
            builder.PrependUOffsetTRelativeSlot(1, args_vector, 0)
            builder.PrependUOffsetTRelativeSlot(0, name_offset, 0)
            per_type.append(builder.EndObject())
        per_type_vector, op_offset = _offsets(builder, per_type), builder.CreateString(op_id)
        builder.StartObject(2)
        builder.PrependUOffsetTRelativeSlot(1, per_type_vector, 0)
        builder.PrependUOffsetTRelativeSlot(0, op_offset, 0)
        built.append(builder.EndObject())
    entries_vector = _offsets(builder, built)
    builder.StartObject(1)
    builder.PrependUOffsetTRelativeSlot(0, entries_vector, 0)
    return builder.EndObject()
