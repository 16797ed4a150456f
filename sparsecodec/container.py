"""Deprecated: moved to :mod:`sparsecodec.format.container` (see :mod:`sparsecodec._moved`)."""

from sparsecodec._moved import alias

alias(__name__)
