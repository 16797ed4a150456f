"""Old module paths from before 0.2's sub-packages, kept as deprecated aliases (removed in 0.3).

Each old module (``sparsecodec.codec`` and the others that docs/api.md and docs/scale.md named) is a two-line
shim that calls :func:`alias`: it warns once and puts the new module in its place in ``sys.modules``, so
``from sparsecodec.codec import encode_file`` and ``import sparsecodec.codec as c`` keep working and name the
very same objects (a monkeypatch on the old name patches the new module).
"""

from __future__ import annotations

import importlib
import sys
import warnings

MOVED = {
    "sparsecodec.codec": "sparsecodec.api",
    "sparsecodec.audio_io": "sparsecodec.audio.io",
    "sparsecodec.container": "sparsecodec.format.container",
    "sparsecodec.events": "sparsecodec.format.events",
    "sparsecodec.render_np": "sparsecodec.synth.render_np",
    "sparsecodec.generator": "sparsecodec.synth.render_torch",
    "sparsecodec.batch": "sparsecodec.jobs.batch",
}
"""Old module → new module."""


def alias(old: str) -> None:
    """Replace module ``old`` by its new home in ``sys.modules``, with a :class:`DeprecationWarning`."""
    new = MOVED[old]
    warnings.warn(
        f"{old} moved to {new} in spev 0.2; the old name will be removed in 0.3",
        DeprecationWarning,
        stacklevel=3,
    )
    sys.modules[old] = importlib.import_module(new)
