"""Command-line commands, one module per area, registered in adaptune/cli.py."""
