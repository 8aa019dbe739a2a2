"""Microcontroller devices (toolchain/compat_mcu.py): names and sizes, and flash/RAM floors in select's verdict.

The end-to-end answers on real TFLM bundles are in tests/backends/test_tflm.py; here the profile
grammar and the verdict's wording on manifest entries shaped like a build's.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from toolchain.compat import assess, load_device, parse_platform, select
from toolchain.compat_mcu import device_from_name, parse_bytes
from toolchain.errors import IncompatibleError, InputError, UsageError


def _manifest(flash: int, ram: int) -> dict:
    return {"artifacts": [{
        "variant": "tflm-int8", "path": "artifacts/tflm-int8/model.tflite",
        "runtime": {"name": "tflite-micro", "min_version": "2026.10"}, "accelerator_apis": ["CMSIS-NN"],
        "platforms": [{"os": "mcu", "arch": ["cortex-m4", "cortex-m7", "esp32-s3"],
                       "min_flash_bytes": flash, "min_ram_bytes": ram}]}]}


@pytest.mark.parametrize("name, core, flash, ram", [
    ("cortex-m7-1m-512k", "cortex-m7", 2**20, 512 * 1024),
    ("ESP32-S3-8M-512K", "esp32-s3", 8 * 2**20, 512 * 1024),
    ("cortex-m0+-256k-32k", "cortex-m0plus", 256 * 1024, 32 * 1024),
])
def test_an_mcu_name_is_core_flash_and_ram(name, core, flash, ram):
    device = load_device(Path(name))
    assert (device.os, device.arch, device.flash_bytes, device.ram_bytes) == ("mcu", core, flash, ram)


@pytest.mark.parametrize("name", ["cortex-m7", "pentium-1m-512k", "cortex-m7-1m", "cortex-m7-1x-512k"])
def test_a_name_that_is_neither_a_file_nor_an_mcu_is_a_usage_error(name):
    assert device_from_name(name) is None
    with pytest.raises(UsageError, match="no such profile file, nor an MCU name"):
        load_device(Path(name))


def test_sizes_read_as_memory_maps_count_them():
    assert [parse_bytes(v, "t") for v in (524288, "512K", "512 KiB", "1M", "2g")] == [2**19, 2**19, 2**19, 2**20, 2 * 2**30]
    with pytest.raises(InputError, match="must be bytes or a number with K, M or G"):
        parse_bytes("lots", "profile: ram")


def test_a_profile_file_states_an_mcu_with_flash_and_ram(tmp_path):
    profile = tmp_path / "board.toml"
    profile.write_text('os = "mcu"\narch = "cortex-m55"\nflash = "2M"\nram = "1M"\n', encoding="utf-8")
    device = load_device(profile)
    assert (device.arch, device.flash_bytes, device.ram_bytes) == ("cortex-m55", 2 * 2**20, 2**20)
    assert device.describe() == "MCU cortex-m55 (2.0 MiB flash, 1.0 MiB RAM)"


def test_flash_and_ram_floors_belong_to_mcu_platforms_only():
    with pytest.raises(InputError, match="only apply to os = \"mcu\""):
        parse_platform({"os": "linux", "arch": ["arm64"], "min_ram_bytes": 10}, "t")
    platform = parse_platform({"os": "mcu", "arch": ["cortex-m4f"], "min_ram_bytes": 10}, "t")
    assert platform.as_dict() == {"os": "mcu", "arch": ["cortex-m4"], "min_ram_bytes": 10}


def test_a_device_with_room_gets_the_artifact_and_its_footprint_without_listing_tflm():
    chosen, _ = select(_manifest(212 * 1024, 96 * 1024), load_device(Path("cortex-m7-1m-512k")))
    assert chosen.variant == "tflm-int8"
    assert chosen.footprint == "212 KiB flash, 96 KiB arena"


def test_a_device_short_of_ram_or_flash_is_told_how_much_it_needs():
    manifest = _manifest(300 * 1024, 600 * 1024)
    (fit,) = assess(manifest, load_device(Path("cortex-m7-256k-512k")))
    assert fit.reasons == ["needs 300 KiB flash, device has 256 KiB", "needs 600 KiB RAM, device has 512 KiB"]
    with pytest.raises(IncompatibleError, match="needs 600 KiB RAM, device has 512 KiB"):
        select(manifest, load_device(Path("cortex-m7-1m-512k")))


def test_an_mcu_of_unknown_size_is_not_assumed_to_fit():
    (fit,) = assess(_manifest(1024, 1024), load_device(None, os_name="mcu", arch="cortex-m4"))
    assert not fit.fits
    assert fit.reasons == ["needs 1 KiB flash, device flash unknown (give flash in the profile)",
                           "needs 1 KiB RAM, device RAM unknown (give ram in the profile)"]
