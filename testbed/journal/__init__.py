"""The journal: one JSON file per run of an experiment (spec, versions, seed, timings,
results per architecture). Versioned (`schema.py`), written atomically after every
architecture (`writer.py`), and read back only through a reader that validates it and
refuses a broken or foreign file with a clear error (`reader.py`). Reports, the model and
Kubernetes runs read or write it."""

from .reader import JournalError, load, loads
from .schema import VERSION
from .writer import JournalWriter

__all__ = ["VERSION", "JournalError", "JournalWriter", "load", "loads"]
