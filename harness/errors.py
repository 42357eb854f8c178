"""The one exception type that means "the user gave us something wrong".

The CLI prints a UserError as a single line and exits non-zero; any other exception is a bug
in this project and keeps its traceback.
"""


class UserError(Exception):
    """A mistake in the user's input (file, option, name). Its message is shown as one line."""

    def __str__(self) -> str:
        # Collapse newlines so that a message quoting file content stays a single line.
        return " ".join(super().__str__().split())
