"""The ``stackc`` commands, one module per family; ``toolchain/cli.py`` registers them."""
