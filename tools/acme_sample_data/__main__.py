from acme_sample_data.build import main

raise SystemExit(main())
