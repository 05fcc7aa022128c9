"""`python -m pathstream.services.cli ...` (what `torchrun ... -m pathstream.services.cli train
escnn` runs)."""

from pathstream.services.cli import main

main()
