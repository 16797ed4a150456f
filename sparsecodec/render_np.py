"""Deprecated: moved to :mod:`sparsecodec.synth.render_np` (see :mod:`sparsecodec._moved`)."""

from sparsecodec._moved import alias

alias(__name__)
