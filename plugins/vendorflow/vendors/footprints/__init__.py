"""Footprints: hook, connection form, datasets."""
