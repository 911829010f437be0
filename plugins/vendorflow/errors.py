"""The errors a vendor pipeline raises; each message names what went wrong and where."""

from __future__ import annotations


class VendorflowError(Exception):
    """Base class of every error raised by this package; its text never holds a secret the process knows."""

    def __init__(self, *args: object) -> None:
        from vendorflow.http.redact import redact_text

        super().__init__(*(redact_text(a) if isinstance(a, str) else a for a in args))


class ConfigError(VendorflowError):
    """A connection, Variable or parameter is missing or malformed."""


class VendorAPIError(VendorflowError):
    """The vendor refused a request (a 4xx other than 429, or retries ran out)."""

    def __init__(self, vendor: str, endpoint: str, status: int | None, message: str) -> None:
        self.vendor, self.endpoint, self.status, self.vendor_message = vendor, endpoint, status, message
        status_text = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"{vendor} {endpoint}: {status_text}: {message}")


class VendorResponseError(VendorflowError):
    """The vendor answered, but the answer breaks the documented shape."""

    def __init__(self, vendor: str, endpoint: str, problem: str) -> None:
        self.vendor, self.endpoint, self.problem = vendor, endpoint, problem
        super().__init__(f"{vendor} {endpoint}: {problem}")


class NotAvailable(VendorflowError):
    """The vendor does not offer the partition asked for (any more): the task is skipped with this
    message and nothing is published or replaced."""


class ValidationFailed(VendorflowError):
    """A batch failed its expectations and was moved to quarantine."""
