"""Loaded by every Python process started with this directory on PYTHONPATH."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import netguard

netguard.install()
sys.path.pop(0)
