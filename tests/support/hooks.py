"""Training-hook stand-ins for the tests."""

from __future__ import annotations


class stop_after:  # lower case: it is used like a function, ``should_stop=stop_after(3)``
    """A ``should_stop`` that says stop from its ``steps + 1``-th question on (asked once per training step).

    ``asked`` counts the questions, so a test can check that training stopped at the first "yes".
    """

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.asked = 0

    def __call__(self) -> bool:
        self.asked += 1
        return self.asked > self.steps
