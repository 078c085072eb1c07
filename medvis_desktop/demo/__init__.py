"""Demo cases: demo models with held-out real volumes carrying inserted lesions and true masks."""

from medvis_desktop.demo.cases import CASES, DemoCase, load_case
from medvis_desktop.demo.data import DemoDataError

__all__ = ["CASES", "DemoCase", "DemoDataError", "load_case"]
