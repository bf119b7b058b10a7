"""``python -m modelgrid_cli``: the ``modelgrid`` command without its console script."""

from modelgrid_cli.main import main

raise SystemExit(main())
