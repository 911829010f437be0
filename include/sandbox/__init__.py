"""A local, faithful sandbox of the five vendor APIs, one module per vendor.

``python -m include.sandbox --port 8765`` (or ``make sandbox``) serves every
vendor under its own prefix on one port, plus ``/_sandbox/...`` control
endpoints that tests use to inject faults and read what the sandbox saw.
"""
