"""The wire protocol: the ``.proto`` files beside this module and the Python code
generated from them (``scripts/gen_protos.py``; a test checks it is fresh). Every
message between processes is one of these; docs/architecture.md describes how the
protocol is versioned."""
