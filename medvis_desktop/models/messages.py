"""Text taken from a model file or card, made fit for a one-line message to the user."""

from __future__ import annotations


def printable(text: str, limit: int = 80) -> str:
    """Control and line-separator characters escaped, length capped: a hostile file cannot make
    a message span lines or pages."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: limit + 1])
    return text if len(text) <= limit else text[:limit] + "…"
