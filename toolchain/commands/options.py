"""Options shared by several commands: --shape, --bind, the device flags."""
from __future__ import annotations

from pathlib import Path

import click

from ..compat import RUNTIME_NAMES, load_device


BIND_HELP = ("Freeze an input, e.g. sr=16000 (repeatable): If nodes it decides keep only the taken branch and it "
             "leaves the artifacts' inputs; NAME alone freezes the value --inputs gives.")


def parse_bindings(binds) -> dict:
    from ..app.prepare import parse_binding

    return dict(parse_binding(b) for b in binds)


def device_options(command):
    """--device PROFILE and the flags that describe (or override) a device."""
    options = [
        click.option("--device", "device_profile", type=click.Path(dir_okay=False, path_type=Path),
                     metavar="PROFILE", help="Device profile (.toml or .json): os, os_version, arch, glibc, "
                                             "runtimes, accelerator_apis, flash, ram; or an MCU named "
                                             "core-flash-RAM (cortex-m7-1m-512k)."),
        click.option("--os", "device_os", help="Device OS: android, ios, macos, windows, linux, mcu."),
        click.option("--os-version", help="Device OS version, e.g. 15.4 or 10.0.19045."),
        click.option("--arch", help="Device CPU architecture, e.g. arm64, x86_64, armv7."),
        click.option("--glibc", help="Device glibc version (Linux), e.g. 2.31."),
        click.option("--runtime", "device_runtimes", multiple=True, metavar="NAME=VERSION",
                     help=f"A runtime on the device, e.g. onnxruntime=1.20.1 (repeatable). Names: "
                          f"{', '.join(RUNTIME_NAMES)}; aliases: tflite -> litert, ort -> onnxruntime, coreml -> Core ML."),
        click.option("--api", "device_apis", multiple=True, help="An accelerator API the device has (repeatable)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def device_from(device_profile, device_os, os_version, arch, glibc, device_runtimes, device_apis, required: bool):
    if not required and device_profile is None and not device_os:
        return None
    return load_device(device_profile, device_os, os_version, arch, glibc, device_runtimes, device_apis)
