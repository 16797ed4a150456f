"""Deprecated: moved to :mod:`sparsecodec.synth.render_torch` (see :mod:`sparsecodec._moved`)."""

from sparsecodec._moved import alias

alias(__name__)
