"""The pipeline's floor: the contracts passes and backends implement, the context they receive, one
registry type, and the runner that executes a pass in-process or in a watched child process.

Nothing here imports a pass, backend, exporter, target or recipe module; every plug-in imports this.
"""
