"""``import stackc``: the stable Python API of the stackc toolchain (the package itself is ``toolchain``).

    import stackc
    result = stackc.build("model.onnx", target="edge-desktop", shapes={"input": (1, 3, 224, 224)})
    print(result.bundle)

Exported: ``build``, ``worlds``, ``TARGET_ALL``, ``BuildResult``, ``StackcError`` (every error the
CLI maps to an exit code derives from it; ``error.exit_code``), ``ExitCode``, ``__version__``.
"""
from toolchain import __version__
from toolchain.api import TARGET_ALL, build, worlds
from toolchain.app.build import BuildResult
from toolchain.errors import ExitCode, StackcError

__all__ = ["build", "worlds", "TARGET_ALL", "BuildResult", "StackcError", "ExitCode", "__version__"]
