"""One rule for ``random_state`` arguments: every stochastic API takes an int, a Generator or None.

Never the global RNG: ``None`` is a fresh, unpredictable generator; an int
seeds a new one; a Generator is used as given (and advanced).
"""

from __future__ import annotations

import numbers

import numpy as np

from .errors import ParameterError

__all__ = ["check_random_state"]


def check_random_state(random_state: int | np.random.Generator | None) -> np.random.Generator:
    """Normalise ``random_state`` to a :class:`numpy.random.Generator`.

    Raises
    ------
    ParameterError
        A negative seed, a bool, or anything else than an int, a Generator or None.

    Examples
    --------
    >>> check_random_state(0).integers(100) == check_random_state(0).integers(100)
    True
    """
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ParameterError(f"random_state={random_state} must be >= 0")
        return np.random.default_rng(int(random_state))
    raise ParameterError(f"random_state={random_state!r} must be an int, a numpy Generator or None")
