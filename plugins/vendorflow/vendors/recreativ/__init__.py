"""Recreativ: hook, connection form, datasets."""
