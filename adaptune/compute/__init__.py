"""Device placement and the target-token loss, below both tuning and evaluation."""
