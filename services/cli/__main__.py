"""`python -m services.cli ...` (what `torchrun ... -m services.cli train escnn` runs)."""

from services.cli import main

main()
