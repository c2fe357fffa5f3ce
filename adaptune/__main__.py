"""``python -m adaptune``."""

from adaptune.cli import main

main()
