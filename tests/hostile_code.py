"""What the two attack suites (test_grading_attacks.py, test_grading_hostile.py) share: the
skip without bubblewrap, and `my_attention` written out right and wrong (no 1/sqrt(d)), to
which each attack adds its code."""
import pytest

from course.sandbox import bwrap

needs_bwrap = pytest.mark.skipif(bwrap() is None, reason="needs bubblewrap (apt-get install "
                                                          "bubblewrap), as .ci/run installs")
WRONG = ("def my_attention(query, key, value, mask=None):\n"
         "    scores = query @ key.transpose(-1, -2)  # no 1/sqrt(d): wrong\n"
         "    if mask is not None:\n        scores = scores + mask\n"
         "    probs = torch.softmax(scores, dim=-1)\n    return probs @ value, probs\n")
RIGHT = WRONG.replace("key.transpose(-1, -2)  # no 1/sqrt(d): wrong",
                      "key.transpose(-1, -2) / math.sqrt(query.size(-1))")
