"""Bundles on disk: the store (staging, checksums, archive, publish), reading one safely, verifying,
signing, merging partial bundles, and what a device pull left out."""
