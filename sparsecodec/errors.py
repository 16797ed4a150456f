"""One exception hierarchy for the whole codec; each kind carries its command-line exit code.

Exit codes (documented in docs/cli.md):

====  =====================================================================
 0    success
 1    internal error (a bug: please report it)
 2    usage error (bad option or argument)
 3    unreadable or unsupported input audio / missing input file
 4    bad .spev file (bad magic, newer version, unsupported layout, truncated, checksum, limits)
 5    output exists (and ``--force`` was not given) or cannot be written
 6    some inputs of a batch failed (the worst per-file code is also reported per file)
130   interrupted (Ctrl-C)
====  =====================================================================
"""

from __future__ import annotations


class SpevError(Exception):
    """Base of every error the codec reports to users.  ``exit_code`` is the CLI's exit status."""

    exit_code = 1


class UsageError(SpevError):
    """A bad option value or argument combination."""

    exit_code = 2


class InputError(SpevError):
    """The input audio cannot be read (missing, unsupported format, empty, too long)."""

    exit_code = 3


class FormatError(SpevError):
    """A .spev file is malformed.  Subclasses say how."""

    exit_code = 4


class BadMagicError(FormatError):
    """The file does not start with the .spev magic bytes."""


class NewerVersionError(FormatError):
    """The file's format version is newer than this reader supports."""


class UnsupportedLayoutError(FormatError):
    """The file's event layout version is not one this decoder renders."""


class UnsupportedStreamError(FormatError):
    """A valid file asks for something this decoder does not render (a sample rate, a channel count)."""


class TruncatedError(FormatError):
    """The file ends before a structure it announces is complete."""


class ChecksumError(FormatError):
    """A CRC-32 does not match: the bytes were damaged."""


class LimitError(FormatError):
    """A length or count in the file exceeds the format's documented bounds."""


class OutputExistsError(SpevError):
    """The output exists and ``--force`` was not given, or it cannot be written."""

    exit_code = 5


class BatchError(SpevError):
    """Some inputs of a multi-file run failed."""

    exit_code = 6
