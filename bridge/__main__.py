"""``python -m bridge {quantize,demo}`` (see `bridge.cli`)."""

from bridge.cli import main

raise SystemExit(main())
