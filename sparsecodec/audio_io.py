"""Deprecated: moved to :mod:`sparsecodec.audio.io` (see :mod:`sparsecodec._moved`)."""

from sparsecodec._moved import alias

alias(__name__)
