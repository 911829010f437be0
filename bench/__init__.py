"""Benchmarks: ``make bench`` runs every ``bench/<name>.py`` module's ``main()``;
``python -m bench <name>`` runs one."""
