"""Errors that mdsnn-zoo raises on bad input: each message names the problem and the fix.

Every one is an ``MdsnnError`` and also the builtin exception a Python user would catch for it:

- ``InvalidValueError`` (``ValueError``): a bad argument value (bits, sizes, options), or a model or
  checkpoint that does not fit;
- ``InvalidTypeError`` (``TypeError``): an argument of the wrong type;
- ``UnknownNameError`` (``KeyError``, a ``LookupError``): an unknown model, architecture, data set or layer;
- ``DatasetNotFoundError``, ``WeightsNotFoundError`` (``FileNotFoundError``): files not where they were
  looked for, or weights that do not ship;
- ``CorruptFileError`` (``ValueError``): a file whose content is not what its format requires;
- ``DownloadError`` (``ConnectionError``): weights that could not be downloaded;
- ``UsageError`` (``RuntimeError``): calls in an order that cannot work (a loss read before its forward).

The command line prints these as one line (``mdsnn-zoo: error: ...``) instead of a traceback.
"""

from __future__ import annotations


class MdsnnError(Exception):
    """Base class of every error mdsnn-zoo raises for bad input or missing files."""


class InvalidValueError(MdsnnError, ValueError):
    """An argument's value is not one that works; the message says which values do."""


class InvalidTypeError(MdsnnError, TypeError):
    """An argument is of the wrong type."""


class UnknownNameError(MdsnnError, KeyError):
    """A name (model, architecture, data set, layer) that is not known; the message lists known ones."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class DatasetNotFoundError(MdsnnError, FileNotFoundError):
    """A data set's files are not where they were looked for; no download is attempted."""


class WeightsNotFoundError(MdsnnError, FileNotFoundError):
    """A weight file that does not exist, or a zoo entry whose weights do not ship."""


class CorruptFileError(MdsnnError, ValueError):
    """A file exists but its content is not what its format requires."""


class DownloadError(MdsnnError, ConnectionError):
    """Weights could not be downloaded (offline, or the server failed)."""


class UsageError(MdsnnError, RuntimeError):
    """Calls made in an order that cannot work."""
