"""medvis_desktop: see why a CNN decided what it did on CT, MRI, mammograms and radiographs."""

import os

# Before anything imports TensorFlow, whichever entry point runs first: oneDNN off (a
# GradientTape through a Keras-2 Xception crashed the process with it on, see DESIGN.md), and
# TensorFlow's start-up chatter kept out of the user's terminal.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
