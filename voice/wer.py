"""Word error rate: the edit distance between word sequences, over the reference length.

Callers tokenise (and normalise numbers, case, umlauts) as their comparison needs.
"""

from __future__ import annotations

from collections.abc import Sequence


def word_error_rate(reference: Sequence[str], hypothesis: Sequence[str]) -> float:
    """Substitutions + deletions + insertions, divided by the reference's length."""
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        previous, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ref != hyp))
    return row[len(hypothesis)] / max(len(reference), 1)
