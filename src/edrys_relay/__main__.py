from edrys_relay.cli import main

raise SystemExit(main())
