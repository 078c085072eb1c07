"""The frozen app's entry point: the same `medvis` command as the installed console script."""

import multiprocessing
import sys

from medvis_desktop.cli import main

if __name__ == "__main__":
    # The window reads some studies in a child process (imaging.load_isolated, forkserver): a
    # frozen executable must recognise the child's command line and become the child.
    multiprocessing.freeze_support()
    sys.exit(main())
