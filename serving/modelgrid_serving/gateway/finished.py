"""What a relayed request came to: the record that every recorder of the sink reads
(:mod:`.sink`). A leaf module, so that the recorders (metrics, live figures, stats) need not
import the sink that calls them.
"""

from __future__ import annotations

from typing import Protocol


class Finished(Protocol):
    """A relayed request as it ended: what every recorder reads."""

    model: str
    pool: str
    """The pool of the backend that took it (the last one tried)."""
    route: str
    """Its route label (``chat``, ``completions``, ``embeddings``)."""
    status: int
    duration_s: float
    """From the first byte of the request to the end of the answer."""
    ended: float
    """``time.monotonic()`` at its end."""
    ttft_s: float | None
    """Seconds to the first streamed event (streams only)."""
    prompt_tokens: int
    completion_tokens: int
    """Usage as the backend reported it; else the prompt's estimate and one token an event."""
