"""spev: a sparse, interpretable audio codec.

Audio is stored as a list of *events* (a 32-number vector of named physical parameters plus a start time)
and rendered back by a small physics-inspired synthesizer.  The public API lives in :mod:`sparsecodec.api`.
"""

__version__ = "0.1.0"
