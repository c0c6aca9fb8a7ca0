from acme_bench.cli import main

raise SystemExit(main())
