"""The frozen app's entry point: the same `medvis` command as the installed console script."""

import sys

from medvis_desktop.cli import main

if __name__ == "__main__":
    sys.exit(main())
