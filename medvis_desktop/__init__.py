"""medvis_desktop: see why a CNN decided what it did on CT, MRI, mammograms and radiographs."""

__version__ = "0.1.0"
