from acme_localdev.cli import main

raise SystemExit(main())
