"""Scanner bridge: watches the scanners' output folders and publishes `slides.scanned`."""
