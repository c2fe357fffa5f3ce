"""Running the compiled pipeline locally with ``kfp.local``."""
