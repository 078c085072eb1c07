"""python -m medvis_desktop.gui [--open PATH --model MODEL ...]: the same as `medvis`."""

from medvis_desktop.cli import main

raise SystemExit(main())
