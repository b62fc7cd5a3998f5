"""Errors that mdsnn-zoo raises on bad input: each message names the problem and the fix.

The command line prints these as one line (``error: ...``) instead of a traceback.
"""

from __future__ import annotations


class MdsnnError(Exception):
    """Base class of every error mdsnn-zoo raises for bad input or missing files."""


class DatasetNotFoundError(MdsnnError, FileNotFoundError):
    """A data set's files are not where they were looked for; no download is attempted."""


class CorruptFileError(MdsnnError, ValueError):
    """A file exists but its content is not what its format requires."""
