"""``python -m layermap ...`` runs the command line, as ``python -m pip`` does."""

from .cli.main import main

raise SystemExit(main())
