"""``python -m aioimds``: the same as the ``aioimds`` command."""

from .cli import main

raise SystemExit(main())
