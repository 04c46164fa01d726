"""strokedfc: dynamic functional connectivity of stroke rs-fMRI as a BIDS App.

Importing the package has no side effects; the numerical core lives in
:mod:`bids_app.core`, the nipype participant workflow in :mod:`bids_app.workflows`,
the group level (no nipype) in :mod:`bids_app.group` and the command line in
:mod:`bids_app.cli`.
"""

from bids_app.__about__ import __version__

__all__ = ["__version__"]
