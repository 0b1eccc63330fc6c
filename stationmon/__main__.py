"""`python -m stationmon` is the same program as the `stationmon` command."""

from stationmon.cli import main

raise SystemExit(main())
