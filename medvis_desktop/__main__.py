from medvis_desktop.cli import main

raise SystemExit(main())
