"""The pathologist's workstation in the browser: sign-in sessions, security headers, slide tiles, worklist."""
