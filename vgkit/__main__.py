from vgkit.cli import main

raise SystemExit(main())
