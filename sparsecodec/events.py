"""Deprecated: moved to :mod:`sparsecodec.format.events` (see :mod:`sparsecodec._moved`)."""

from sparsecodec._moved import alias

alias(__name__)
