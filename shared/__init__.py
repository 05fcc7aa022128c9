"""PathStream shared contracts: events, settings, logging, database, tile store and bus wiring."""
