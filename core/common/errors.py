"""User-facing errors: printed as one line by the CLI, never as a traceback."""


class UserError(Exception):
    """A mistake the user can fix (bad input, missing file, wrong flag). ``exit_code`` is returned."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code
