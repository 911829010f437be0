"""Allyy: hook, connection form, datasets, actions and operators."""
