"""Report cached candidates with sentiment_round7's machinery (project venv):
    cd CLONE; SENTIMENT_DATA=DIR PYTHONPATH=layers/shared:src:scripts \
        .venv/bin/python /tmp/cnn/evaluate.py NAME...   (names: cached npz or avg:A+B@m)"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import sentiment_round7 as R7
import sentiment_round8  # noqa: F401  (registers r8base)

cache = Path("/tmp/senti-cache")
for name in sys.argv[1:]:
    R7.report(name, R7.probabilities(name, cache))
