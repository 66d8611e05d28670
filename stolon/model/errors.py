"""The model's one error type, in a module of its own: the codec and the document limits
(:mod:`stolon.model.limits`, which the codec uses) both raise it."""

from __future__ import annotations


class ModelError(ValueError):
    """A document that does not fit the model; ``path`` names the offending field."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)
