"""Deprecated: moved to :mod:`sparsecodec.jobs.batch` (see :mod:`sparsecodec._moved`)."""

from sparsecodec._moved import alias

alias(__name__)
