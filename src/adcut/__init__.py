"""adcut: learn to tell ads from content in audio, then find and cut them out of episodes."""

__version__ = "0.1.0"

import os as _os

# numpy's OpenBLAS starts a thread per core for the small matrix products of feature extraction;
# next to the decoding thread and the model that makes them ~4x slower in wall time and ~3x in CPU
# time on two cores (benchmarks/process_speed.py). One thread unless the user sets it.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
