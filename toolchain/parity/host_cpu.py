"""The CPU that measured a parity row: architecture, model, and the features that pick int8 kernels.

ONNX Runtime (MLAS), OpenVINO (oneDNN) and LiteRT choose their 8-bit GEMM kernels from these
features: x86 VNNI/AMX accumulate u8*s8 products in int32, plain AVX2/AVX-512 add pairs of them in
a saturating int16 (VPMADDUBSW); ARM dot-product and i8mm kernels accumulate in int32. A fleet reads
this next to every parity verdict to see where the evidence came from. ``cpu_record()`` is the
same dict for every call in one process, so a bundle built twice on one host is byte-identical.
"""
from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path
from typing import Any

# Features that select 8-bit kernels, by the names Linux's /proc/cpuinfo gives them.
X86_INT8_FEATURES = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx_vnni_int8", "amx_tile", "amx_int8")
ARM_INT8_FEATURES = ("asimd", "asimddp", "i8mm", "sve", "sve2", "sme")
_MACOS_ARM_FEATURES = {"hw.optional.arm.FEAT_DotProd": "asimddp", "hw.optional.arm.FEAT_I8MM": "i8mm",
                       "hw.optional.arm.FEAT_SME": "sme", "hw.optional.neon": "asimd"}


def _cpuinfo() -> tuple[str, set[str]]:
    """(model name, flags) from /proc/cpuinfo's first processor; ("", set()) where there is none."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "", set()
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return model, flags


def _sysctl(name: str) -> str:
    try:
        return subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _macos() -> tuple[str, set[str]]:
    model = _sysctl("machdep.cpu.brand_string")
    flags = {feature for key, feature in _MACOS_ARM_FEATURES.items() if _sysctl(key) == "1"}
    flags |= {f.lower().replace(".", "_") for f in (_sysctl("machdep.cpu.leaf7_features") + " "
                                                     + _sysctl("machdep.cpu.features")).split()}
    return model, flags


def u8s8_kernel(arch: str, features: set[str]) -> str:
    """Which 8-bit GEMM ONNX Runtime's MLAS picks for u8*s8 on this CPU, and whether it saturates."""
    if arch in ("x86_64", "amd64", "x86", "i686"):
        if "amx_int8" in features:
            return "amx (int32 accumulate)"
        if "avx512_vnni" in features and "avx512bw" in features:
            return "avx512-vnni vpdpbusd (int32 accumulate)"
        if "avx_vnni" in features:
            return "avx-vnni vpdpbusd (int32 accumulate)"
        if "avx512bw" in features:
            return "avx512 vpmaddubsw (pairs summed in saturating int16)"
        if "avx2" in features:
            return "avx2 vpmaddubsw (pairs summed in saturating int16)"
        return "sse widening (int32 accumulate)"
    if arch in ("aarch64", "arm64"):
        if "i8mm" in features:
            return "neon ummla/smmla (int32 accumulate)"
        if "asimddp" in features:
            return "neon udot/sdot (int32 accumulate)"
        return "neon widening (int32 accumulate)"
    return "unknown"


@functools.lru_cache(maxsize=1)
def cpu_record() -> dict[str, Any]:
    """{arch, cpu, int8_features, u8s8_kernel} of this host, read once per process."""
    arch = platform.machine().lower() or "unknown"
    system = platform.system()
    model, flags = _macos() if system == "Darwin" else _cpuinfo()
    known = X86_INT8_FEATURES if arch in ("x86_64", "amd64", "x86", "i686") else ARM_INT8_FEATURES
    features = sorted(f for f in known if f in flags)
    return {"arch": arch, "cpu": model or platform.processor() or arch, "int8_features": features,
            "u8s8_kernel": u8s8_kernel(arch, set(features))}


def describe() -> str:
    """One line for logs and CI: the CPU and the features that pick its int8 kernels."""
    record = cpu_record()
    features = " ".join(record["int8_features"]) or "none"
    return f"{record['cpu']} ({record['arch']}); int8 features: {features}; u8s8 GEMM: {record['u8s8_kernel']}"


if __name__ == "__main__":
    print(describe())
