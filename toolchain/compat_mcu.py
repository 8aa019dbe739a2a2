"""Microcontrollers in device profiles: cores, flash and RAM, and the footprint floors TFLM artifacts carry.

A TFLM artifact's platforms (``os = "mcu"``) name the cores it is built for and, in the manifest, the
bytes it measured: ``min_flash_bytes`` (the model array) and ``min_ram_bytes`` (the tensor arena plus
margin). An MCU device gives its core, flash and RAM, in a profile (``os = "mcu"``, ``arch =
"cortex-m7"``, ``flash = "1M"``, ``ram = "512K"``) or by name: ``cortex-m7-1m-512k`` is a Cortex-M7
with 1 MiB flash and 512 KiB RAM. TFLM is compiled into the firmware, so a device need not list it.
"""
from __future__ import annotations

import re
from typing import Any

from .errors import InputError

CORES = {
    "cortex-m0plus": "cortex-m0plus", "cortex-m0+": "cortex-m0plus", "cortex-m3": "cortex-m3",
    "cortex-m4": "cortex-m4", "cortex-m4f": "cortex-m4", "cortex-m7": "cortex-m7", "cortex-m33": "cortex-m33",
    "cortex-m55": "cortex-m55", "cortex-m85": "cortex-m85", "esp32": "esp32", "esp32-s3": "esp32-s3",
}
RUNTIMES_LINKED_IN = {"tflite-micro": ("mcu",)}  # built into the firmware, not installed on the device
_SIZE = re.compile(r"^(\d{1,12})\s*([kmg]?)(i?b)?$", re.IGNORECASE)
_NAME = re.compile(r"^(?P<core>[a-z0-9+-]+?)-(?P<flash>\d{1,9}[kmg])-(?P<ram>\d{1,9}[kmg])$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_bytes(value: Any, where: str) -> int:
    """``524288``, ``"512K"``, ``"512 KiB"``, ``"1M"`` -> bytes (powers of 1024, as memory maps count)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE.match(str(value).strip())
    if not match:
        raise InputError(f"{where}: size '{str(value)[:40]}' must be bytes or a number with K, M or G (like 512K)")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def device_from_name(name: str) -> dict[str, Any] | None:
    """``cortex-m7-1m-512k`` -> the profile fields of that MCU; None when the name is not of that form."""
    match = _NAME.match(name.strip())
    if not match or match.group("core").lower() not in CORES:
        return None
    return {"os": "mcu", "arch": match.group("core").lower(), "flash": match.group("flash"), "ram": match.group("ram")}


def kib(size: int) -> str:
    if size >= 1024**2:
        return f"{size / 1024**2:.1f} MiB"
    return f"{-(-size // 1024)} KiB"


def footprint_problems(floors: dict[str, int | None], flash: int | None, ram: int | None) -> list[str]:
    """Why a device's flash or RAM is short of an artifact's measured floors (unknown sizes are reasons too)."""
    problems = []
    for what, need, has in (("flash", floors.get("min_flash_bytes"), flash), ("RAM", floors.get("min_ram_bytes"), ram)):
        if need is None:
            continue
        if has is None:
            problems.append(f"needs {kib(need)} {what}, device {what} unknown (give {what.lower()} in the profile)")
        elif has < need:
            problems.append(f"needs {kib(need)} {what}, device has {kib(has)}")
    return problems


def footprint(floors: dict[str, int | None]) -> str | None:
    """``212 KiB flash, 96 KiB arena`` for an artifact that measured its footprint."""
    flash, ram = floors.get("min_flash_bytes"), floors.get("min_ram_bytes")
    if flash is None and ram is None:
        return None
    parts = ([f"{kib(flash)} flash"] if flash is not None else []) + ([f"{kib(ram)} arena"] if ram is not None else [])
    return ", ".join(parts)
