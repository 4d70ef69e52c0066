"""Binary-level image scanning: every file of every layer is read once, as a stream, and
detectors turn what they recognise into components; layers are combined into a bill of
materials (BOM) per layer and per image, exported as CycloneDX or SPDX.

Layer (see docs/ARCHITECTURE.md): L2b. The pure parts (model, interfaces, detectors, the
layer walk, the BOM, the exports) import nothing of the registry; jobs.py and stores.py are
the only modules that touch the database.
"""
