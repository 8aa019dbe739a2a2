"""Device compatibility: which artifact of a bundle a device should load, or why none fits.

Each variant of a target declares machine-readable platform floors (``platforms = [{ os =
"android", min_version = "8.0", arch = ["arm64", ...] }]``); the manifest copies them per
artifact. A device profile (TOML/JSON file or CLI flags) states the device's OS and version,
CPU architecture, glibc (Linux), runtimes with versions and accelerator APIs. An artifact fits
when one of its platforms matches (OS, architecture, version floors) and the device has its
runtime at or above the floor; among the fitting ones the device's accelerator APIs, then the
world's own variant order, decide.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._toml import Table, read_toml
from .compat_mcu import CORES, RUNTIMES_LINKED_IN, device_from_name, footprint, footprint_problems, kib, parse_bytes
from .errors import IncompatibleError, InputError, UsageError

OS_TITLES = {"android": "Android", "ios": "iOS", "macos": "macOS", "windows": "Windows", "linux": "Linux",
             "mcu": "MCU"}
ARCH_ALIASES = {
    "arm64": "arm64", "aarch64": "arm64", "arm64-v8a": "arm64", "armv8": "arm64",
    "x86_64": "x86_64", "amd64": "x86_64", "x64": "x86_64",
    "armv7": "armv7", "armv7l": "armv7", "armeabi-v7a": "armv7", "armhf": "armv7",
    "x86": "x86", "i686": "x86", "i386": "x86",
    **CORES,  # microcontroller cores (os "mcu"; compat_mcu.py)
}
# The runtimes worlds name (targets/*.toml); a device's --runtime / profile names are one of these or an alias.
RUNTIME_NAMES = ("onnxruntime", "onnxruntime-mobile", "openvino", "litert", "Core ML", "tflite-micro")
RUNTIME_ALIASES = {
    "ort": "onnxruntime", "onnx-runtime": "onnxruntime", "onnxruntime-gpu": "onnxruntime",
    "onnxruntime-directml": "onnxruntime", "ort-mobile": "onnxruntime-mobile", "onnxruntime-android": "onnxruntime-mobile",
    "onnxruntime-objc": "onnxruntime-mobile", "onnxruntime-c": "onnxruntime-mobile",
    "tflite": "litert", "tensorflow-lite": "litert", "tensorflowlite": "litert", "ai-edge-litert": "litert",
    "tflite-runtime": "litert", "tflite_runtime": "litert",
    "coreml": "Core ML", "core-ml": "Core ML", "core ml": "Core ML",
    "tflm": "tflite-micro", "tensorflow-lite-micro": "tflite-micro", "litert-micro": "tflite-micro",
    "openvino-runtime": "openvino", "ov": "openvino",
}
# Why select prefers one fitting artifact over another, in this order; each choice names the rule that decided it.
PREFERENCE_RULES = (
    "more of the device's accelerator APIs",
    "the world's own variant order (its author's preference: the first listed variant wins a tie)",
)
# An ORT-format model loads in a full ONNX Runtime build too; the reverse is not true of mobile builds.
RUNTIME_SATISFIED_BY = {"onnxruntime-mobile": ("onnxruntime-mobile", "onnxruntime")}
# Runtimes that ship with the OS: their floor is the platform's OS floor, which is checked on its own.
RUNTIMES_OF_THE_OS = {"Core ML": ("ios", "macos")}
_VERSION = re.compile(r"^\d{1,9}(\.\d{1,9}){0,7}$")  # bounded: int() of thousands of digits is refused by Python


def parse_version(text: str, where: str) -> tuple[int, ...]:
    """Dotted numeric versions only ("13", "8.0", "10.0.17763", "2025.0"), so comparison is exact."""
    text = str(text).strip()
    if not _VERSION.match(text):
        raise InputError(f"{where}: version '{text[:40]}' must be dotted numbers like 13.0 or 10.0.17763 "
                         "(at most 8 parts of 9 digits)")
    return tuple(int(p) for p in text.split("."))


def _cmp_version(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    width = max(len(a), len(b))
    a, b = a + (0,) * (width - len(a)), b + (0,) * (width - len(b))
    return (a > b) - (a < b)


def runtime_name(name: str, where: str) -> str:
    """A known runtime name for ``name`` (case, ``_`` and aliases such as tflite -> litert forgiven), or an
    error that lists the known names and the nearest one."""
    key = str(name).strip()
    by_lower = {n.lower(): n for n in RUNTIME_NAMES}
    folded = key.lower().replace("_", "-")
    found = by_lower.get(key.lower()) or by_lower.get(folded) or RUNTIME_ALIASES.get(key.lower()) \
        or RUNTIME_ALIASES.get(folded)
    if found:
        return found
    import difflib

    near = difflib.get_close_matches(folded, [*by_lower, *RUNTIME_ALIASES], n=1, cutoff=0.6)
    hint = f"; did you mean '{by_lower.get(near[0]) or RUNTIME_ALIASES[near[0]]}'?" if near else ""
    raise InputError(f"{where}: unknown runtime '{key[:60]}'{hint} (known: {', '.join(RUNTIME_NAMES)}; "
                     f"aliases such as tflite -> litert, ort -> onnxruntime, coreml -> Core ML)")


def normalize_arch(name: str, where: str) -> str:
    arch = ARCH_ALIASES.get(str(name).lower())
    if arch is None:
        raise InputError(f"{where}: unknown CPU architecture '{name}' (known: {', '.join(sorted(ARCH_ALIASES))})")
    return arch


def _os_name(name: str, where: str) -> str:
    os_name = str(name).lower()
    if os_name not in OS_TITLES:
        raise InputError(f"{where}: unknown os '{name}' (known: {', '.join(OS_TITLES)})")
    return os_name


@dataclass(frozen=True)
class Platform:
    """One OS an artifact supports: its version floor, CPU architectures and (Linux) glibc floor."""

    os: str
    arch: tuple[str, ...]
    min_version: str | None = None
    min_glibc: str | None = None
    min_flash_bytes: int | None = None  # mcu: measured by the build (compat_mcu.py)
    min_ram_bytes: int | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"os": self.os, "arch": list(self.arch)}
        for key in ("min_version", "min_glibc", "min_flash_bytes", "min_ram_bytes"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data

    def describe(self) -> str:
        floor = f" {self.min_version}+" if self.min_version else ""
        glibc = f" (glibc {self.min_glibc}+)" if self.min_glibc else ""
        return f"{OS_TITLES[self.os]}{floor}{glibc} on {'/'.join(self.arch)}"


def parse_platform(data: Any, where: str) -> Platform:
    table = Table(data, where)
    os_name = _os_name(table.get("os", str), where)
    arch = tuple(normalize_arch(a, where) for a in table.strings("arch"))
    if not arch:
        raise InputError(f"{where}: 'arch' must list at least one CPU architecture")
    min_version = table.get("min_version", str, None)
    min_glibc = table.get("min_glibc", str, None)
    for value in (min_version, min_glibc):
        if value is not None:
            parse_version(value, where)
    if min_glibc is not None and os_name != "linux":
        raise InputError(f"{where}: 'min_glibc' only applies to os = \"linux\"")
    floors = [table.get(key, int, None) for key in ("min_flash_bytes", "min_ram_bytes")]
    if any(f is not None for f in floors) and os_name != "mcu":
        raise InputError(f"{where}: 'min_flash_bytes' and 'min_ram_bytes' only apply to os = \"mcu\"")
    if any(f is not None and f < 0 for f in floors):
        raise InputError(f"{where}: 'min_flash_bytes' and 'min_ram_bytes' must be at least 0")
    table.done()
    return Platform(os_name, arch, min_version, min_glibc, *floors)


def parse_platforms(value: Any, where: str) -> tuple[Platform, ...]:
    if not isinstance(value, list) or not value:
        raise InputError(f"{where}: 'platforms' must be a non-empty list of tables like "
                         "{ os = \"android\", min_version = \"8.0\", arch = [\"arm64\"] }")
    return tuple(parse_platform(p, f"{where}.platforms[{i}]") for i, p in enumerate(value))


@dataclass(frozen=True)
class Device:
    os: str
    os_version: str | None = None
    arch: str | None = None
    glibc: str | None = None
    runtimes: dict[str, str] = field(default_factory=dict, hash=False)
    accelerator_apis: tuple[str, ...] = ()
    flash_bytes: int | None = None  # mcu
    ram_bytes: int | None = None

    def describe(self) -> str:
        version = f" {self.os_version}" if self.os_version else ""
        arch = f" {self.arch}" if self.arch else ""
        memory = ", ".join(f"{kib(size)} {what}" for size, what in ((self.flash_bytes, "flash"), (self.ram_bytes, "RAM"))
                           if size is not None)
        return f"{OS_TITLES[self.os]}{version}{arch}" + (f" ({memory})" if memory else "")


def load_device(path: Path | None, os_name=None, os_version=None, arch=None, glibc=None,
                runtimes: tuple[str, ...] = (), apis: tuple[str, ...] = ()) -> Device:
    """A device from a TOML/JSON profile, each given flag overriding the file's value."""
    data: dict[str, Any] = {}
    where = "device"
    if path is not None:
        where = Path(path).name
        named = None if Path(path).exists() else device_from_name(str(path))
        if named is None and not Path(path).exists():
            raise UsageError(f"--device {path}: no such profile file, nor an MCU name like cortex-m7-1m-512k "
                             "(core-flash-RAM)")
        data = named if named is not None else _read_profile(Path(path))
    table = Table(data, where)
    os_name = os_name or table.get("os", str, None)
    os_version = os_version or table.get("os_version", str, None)
    arch = arch or table.get("arch", str, None)
    glibc = glibc or table.get("glibc", str, None)
    profile_runtimes = table.get("runtimes", dict, {})
    profile_apis = table.strings("accelerator_apis", ())
    flash, ram = (table.get(key, (str, int), None) for key in ("flash", "ram"))
    table.done()
    if not os_name:
        raise UsageError("a device needs an OS: give --device PROFILE or --os (android, ios, macos, windows, linux)")
    merged_runtimes = {}
    for name, version in profile_runtimes.items():
        if not isinstance(version, str):
            raise InputError(f"{where}: runtimes.{name} must be a version string like \"1.20.1\"")
        merged_runtimes[name] = version
    for text in runtimes:
        name, sep, version = text.partition("=")
        if not sep or not name or not version:
            raise UsageError(f"--runtime '{text}': expected NAME=VERSION like onnxruntime=1.20.1")
        merged_runtimes[name] = version
    named = {}
    for name, version in merged_runtimes.items():
        parse_version(version, f"{where}: runtime {name}")
        named[runtime_name(name, f"{where}: runtime")] = version
    merged_runtimes = named
    for value, what in ((os_version, "os_version"), (glibc, "glibc")):
        if value is not None:
            parse_version(value, f"{where}: {what}")
    return Device(
        os=_os_name(os_name, where), os_version=os_version,
        arch=normalize_arch(arch, where) if arch else None, glibc=glibc,
        runtimes=merged_runtimes, accelerator_apis=tuple(profile_apis) + tuple(apis),
        flash_bytes=parse_bytes(flash, f"{where}: flash") if flash is not None else None,
        ram_bytes=parse_bytes(ram, f"{where}: ram") if ram is not None else None,
    )


def _read_profile(path: Path) -> dict[str, Any]:
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except (ValueError, UnicodeDecodeError, OSError) as e:
            raise InputError(f"{path}: not a readable JSON device profile ({type(e).__name__})") from None
        return data
    return read_toml(path)


@dataclass
class Fit:
    variant: str
    path: str
    fits: bool
    reasons: list[str]
    accelerated_by: list[str] = field(default_factory=list)
    footprint: str | None = None  # mcu: "212 KiB flash, 96 KiB arena"
    preference: str | None = None  # a fitting artifact: the rule (PREFERENCE_RULES) that chose it or passed it over

    def as_dict(self) -> dict[str, Any]:
        data = {"variant": self.variant, "path": self.path, "fits": self.fits, "reasons": self.reasons,
                "accelerated_by": self.accelerated_by, "preference": self.preference}
        return {**data, "footprint": self.footprint} if self.footprint else data


def _platform_problems(platform: Platform, device: Device) -> list[str]:
    problems = []
    title = OS_TITLES[platform.os]
    if device.arch is not None and device.arch not in platform.arch:
        problems.append(f"needs {title} on {' or '.join(platform.arch)}, device is {device.arch}")
    if platform.min_version is not None:
        if device.os_version is None:
            problems.append(f"needs {title} {platform.min_version}+, device OS version unknown (give --os-version)")
        elif _cmp_version(parse_version(device.os_version, "device"), parse_version(platform.min_version, "")) < 0:
            problems.append(f"needs {title} {platform.min_version}, device has {title} {device.os_version}")
    if platform.min_glibc is not None:
        if device.glibc is None:
            problems.append(f"needs glibc {platform.min_glibc}+, device glibc unknown (give --glibc)")
        elif _cmp_version(parse_version(device.glibc, "device"), parse_version(platform.min_glibc, "")) < 0:
            problems.append(f"needs glibc {platform.min_glibc}, device has glibc {device.glibc}")
    floors = {"min_flash_bytes": platform.min_flash_bytes, "min_ram_bytes": platform.min_ram_bytes}
    return problems + footprint_problems(floors, device.flash_bytes, device.ram_bytes)


def _runtime_problems(runtime: dict[str, Any], device: Device) -> list[str]:
    name, floor = runtime.get("name", "?"), runtime.get("min_version", "0")
    if device.os in RUNTIMES_OF_THE_OS.get(name, ()) + RUNTIMES_LINKED_IN.get(name, ()) and name not in device.runtimes:
        return []
    accepted = RUNTIME_SATISFIED_BY.get(name, (name,))
    present = [(n, device.runtimes[n]) for n in accepted if n in device.runtimes]
    if not present:
        has = ", ".join(f"{n} {v}" for n, v in sorted(device.runtimes.items())) or "none listed"
        return [f"needs runtime {name} >= {floor}, device has no {name} (has: {has})"]
    floor_version = parse_version(floor, f"manifest runtime {name}")
    if any(_cmp_version(parse_version(v, "device"), floor_version) >= 0 for _, v in present):
        return []
    found = ", ".join(f"{n} {v}" for n, v in present)
    return [f"needs {name} >= {floor}, device has {found}"]


def _api_key(name: str) -> str:
    return name.split(" (")[0].strip().lower()


def assess(manifest: dict[str, Any], device: Device) -> list[Fit]:
    """One Fit per artifact of the manifest, in the world's own variant order."""
    fits = []
    device_apis = {_api_key(a) for a in device.accelerator_apis}
    for artifact in manifest.get("artifacts", []):
        reasons: list[str] = []
        size = None
        raw = artifact.get("platforms")
        if not raw:
            reasons.append("the manifest lists no machine-readable platforms for it (rebuild with this stackc)")
        else:
            platforms = parse_platforms(raw, f"manifest artifact {artifact.get('variant')}")
            same_os = [p for p in platforms if p.os == device.os]
            if not same_os:
                built_for = ", ".join(dict.fromkeys(OS_TITLES[p.os] for p in platforms))
                reasons.append(f"built for {built_for}; device runs {OS_TITLES[device.os]}")
            else:
                per_platform = [_platform_problems(p, device) for p in same_os]
                if all(per_platform):
                    reasons.extend(min(per_platform, key=len))
                else:
                    fitting = same_os[[bool(p) for p in per_platform].index(False)]
                    size = footprint({"min_flash_bytes": fitting.min_flash_bytes, "min_ram_bytes": fitting.min_ram_bytes})
        reasons.extend(_runtime_problems(artifact.get("runtime", {}), device))
        accelerated = [a for a in artifact.get("accelerator_apis", [])
                       if _api_key(a) in device_apis and not _api_key(a).startswith("cpu")]
        fits.append(Fit(str(artifact.get("variant")), str(artifact.get("path")), not reasons, reasons, accelerated,
                        size if not reasons else None))
    return fits


def choose(fits: list[Fit]) -> Fit | None:
    """The fitting artifact by PREFERENCE_RULES: most device accelerator APIs, then the world's order.
    Every fitting artifact's ``preference`` says which rule decided for or against it."""
    candidates = [(-len(f.accelerated_by), i, f) for i, f in enumerate(fits) if f.fits]
    if not candidates:
        return None
    chosen = min(candidates, key=lambda c: c[:2])[2]
    for accelerators, _, fit in candidates:
        rule = 1 if -accelerators != len(chosen.accelerated_by) else 2
        if fit is chosen:
            alone = len(candidates) == 1
            rule = 2 if not alone and all(-c[0] == len(chosen.accelerated_by) for c in candidates) else 1
            fit.preference = "the only artifact that fits" if alone else f"chosen by rule {rule}: {PREFERENCE_RULES[rule - 1]}"
        else:
            fit.preference = f"fits, but {chosen.variant} is preferred by rule {rule}: {PREFERENCE_RULES[rule - 1]}"
    return chosen


def select(manifest: dict[str, Any], device: Device) -> tuple[Fit, list[Fit]]:
    """The artifact to load, or an IncompatibleError that says why each artifact does not fit."""
    fits = assess(manifest, device)
    chosen = choose(fits)
    if chosen is None:
        why = "; ".join(f"{f.variant}: {', '.join(f.reasons)}" for f in fits) or "the bundle has no artifacts"
        raise IncompatibleError(f"no artifact of this bundle fits the device ({device.describe()}): {why}")
    return chosen, fits
