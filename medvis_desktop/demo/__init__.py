"""Demo cases: demo models with held-out real volumes carrying inserted lesions and true masks.

Import the modules themselves (cases needs Keras; studies and data do not)."""
