"""``python -m acme_lineage``: see ``acme_lineage.cli``."""

from acme_lineage.cli import main

raise SystemExit(main())
