"""Deprecated: moved to :mod:`sparsecodec.api` (see :mod:`sparsecodec._moved`)."""

from sparsecodec._moved import alias

alias(__name__)
