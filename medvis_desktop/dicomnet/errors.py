"""The one error type the DICOM network layer raises: a single line a user can act on."""

from __future__ import annotations

from medvis_desktop.errors import MedvisError


class DicomNetError(MedvisError):
    """A DICOM network operation failed: PACS down, association refused, no answer, bad status."""
