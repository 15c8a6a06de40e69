"""Where lntune keeps its caches: $LNTUNE_HOME (default ~/.cache/lntune).

Holds the converted embedded LLM, generated worlds and pretrained world vision towers, so later runs
take seconds instead of minutes.
"""

import os
from pathlib import Path


def lntune_home() -> Path:
    """The cache root, created on first use."""
    home = Path(os.environ.get("LNTUNE_HOME", Path.home() / ".cache" / "lntune")).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home
