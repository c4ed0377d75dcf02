"""The one error type users see: a one-line message that names the file, field or shape; and the one
warning type, for input that works but probably not as meant (the CLI prints it as one line too)."""


class VaekitError(Exception):
    """Raised for bad input or state a user can fix; the message is one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class NonFiniteLossError(VaekitError):
    """The training loss became NaN or inf; carries the step and the batch's indices."""

    def __init__(self, step: int, batch_index: list[int], path: str | None = None):
        self.step = step
        self.batch_index = batch_index
        where = f"; offending batch indices saved to {path}" if path else ""
        super().__init__(f"non-finite loss at step {step}{where} (use on_nonfinite='skip' to skip such batches)")


class VaekitWarning(UserWarning):
    """Input that is accepted but likely to give a poor or surprising result; the message is one line
    and says what to do instead."""
