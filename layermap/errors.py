"""The one base class for errors a user can cause: the CLI prints its message and exits 2."""


class LayermapError(ValueError):
    """Bad input from a user: the message is one sentence naming the input and the fix."""
