"""PathStream services: detector, escnn, marrow and reporter, and the `pathstream` command line."""
