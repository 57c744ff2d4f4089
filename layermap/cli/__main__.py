"""``python -m layermap.cli`` (kept for scripts written before ``python -m layermap``)."""

from .main import main

raise SystemExit(main())
