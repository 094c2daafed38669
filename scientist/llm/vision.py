"""Showing images to a model: which model of a launch can see them, and images as message content.

Two steps show images: the figure check after the plots (scientist/pipeline/figure_check.py) and the reviewers, who
get the paper's pages (scientist/paper/review.py). Both use the model `vision_model` returns, and both are skipped
when it returns None. Images travel as OpenAI-style `image_url` parts holding a base64 PNG data URL, which litellm
translates for every provider; they go through `scientist.llm.client.complete` like any other call, so they are
budgeted, costed, journaled in the ledger and replayed on resume (the request digest covers the image bytes).

Like client.py, this module imports litellm only inside its functions.
"""

from __future__ import annotations

import base64

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def vision_model(model: str, declared: str | None) -> str | None:
    """The model to show images to: `declared` (--vision-model) when given, else `model` when litellm's model
    information (its local cost map, no network) says it takes images; None when neither.

    A declared model is taken at its word: a local or custom model that sees images is often not in litellm's map.
    """
    if declared:
        return declared
    import litellm

    return model if litellm.supports_vision(model) else None


def png_part(png: bytes) -> dict:
    """One image as an OpenAI-style message part. Raises ValueError for bytes that are not a PNG."""
    if not png.startswith(PNG_SIGNATURE):
        raise ValueError(f"not a PNG image (it starts with {png[:8]!r})")
    url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return {"type": "image_url", "image_url": {"url": url}}


def user_message_with_images(text: str, pngs: list[bytes]) -> dict:
    """A user message of `text` followed by the images, in order."""
    return {"role": "user", "content": [{"type": "text", "text": text}, *(png_part(png) for png in pngs)]}

