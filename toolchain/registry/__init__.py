"""Bundles in OCI registries: ``stackc push`` and ``stackc pull``.

Why a registry: fleets and CI already run one, it stores blobs by sha256 (as SHA256SUMS does), and
a device can fetch only the blobs it needs. The distribution protocol is spoken by oras-py (the
``registry`` extra), never by hand; what a registry serves is trusted only once it verifies here.
"""
