"""Errors the entrypoint reports as one line (no traceback) with exit code 2."""


class TrainError(Exception):
    """Bad arguments, recipe keys or dataset: the message says what and where."""
