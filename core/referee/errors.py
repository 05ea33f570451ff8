"""The referee's one error type: a refused call and the HTTP status the API answers it with."""

from __future__ import annotations


class RefereeError(Exception):
    """A refused call: ``status`` is the HTTP status the API answers with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message
