"""Training checkpoints in ``MODEL_DIR/checkpoints/``: ``last.pt`` (everything a resumed run needs) and ``best.pt``
(the weights of the best validation), written atomically with `torch.save` and read back with
``weights_only=True`` (plain tensors and containers only), each marked with `CHECKPOINT_FORMAT`.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from ..errors import LesionDetectError
from ..writers.atomic import atomic_output

CHECKPOINTS, LAST, BEST = "checkpoints", "last.pt", "best.pt"
CHECKPOINT_FORMAT = 1


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` (its folder made if needed); a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_output(path) as temporary:
        temporary.write_bytes(buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by this module (plain tensors and containers only: ``weights_only=True``)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt or foreign file
        raise LesionDetectError(f"{path}: not a readable training checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise LesionDetectError(f"{path}: not a LesionDetect training checkpoint")
    return state
