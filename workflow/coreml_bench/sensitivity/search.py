"""The budgeted mixed-precision search over per-layer sensitivity measurements.

Each weight tensor gets one option: one of the measured settings (its cost: the measured
sensitivity of compressing that tensor alone; its bytes: what the compressed package stores
for it) or, where allowed, staying fp16 (cost 0, its dense bytes). The search picks one
option per tensor so the tensors' bytes fit the budget and the summed cost is least.

Summing per-tensor costs assumes the damage of compressing several tensors adds up. That
holds to first order for small perturbations (KL of a small output change is quadratic in
it, cross terms average out); it is the assumption of HAWQ/NNCF-style searches. The
evaluation of the searched package, not the sum, is what the table reports.

``knapsack`` solves the multiple-choice knapsack exactly on a byte grid (each option's
bytes rounded *up* to the grid, so the true total never exceeds the budget); ``greedy``
starts from the cheapest-in-cost options and repeatedly takes the move that saves bytes at
the least cost per byte saved, until the budget is met.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SearchMethod = Literal["knapsack", "greedy"]
GRID_UNITS = 1 << 16  # byte grid of the knapsack: budget / GRID_UNITS per unit


class BudgetError(ValueError):
    """No choice of options fits the budget."""


@dataclass(frozen=True)
class Option:
    setting: str  # experiment id of the setting, or "fp16"
    stored_bytes: int
    cost: float


@dataclass(frozen=True)
class Choice:
    tensor: str
    option: Option


def _check(tensors: dict[str, list[Option]], budget: int) -> None:
    smallest = sum(min(o.stored_bytes for o in options) for options in tensors.values())
    if smallest > budget:
        raise BudgetError(
            f"the budget is {budget} bytes for the tensors, but the smallest options of "
            f"every tensor already take {smallest} bytes"
        )
    for name, options in tensors.items():
        if not options:
            raise BudgetError(f"tensor {name!r} has no option")


def knapsack(tensors: dict[str, list[Option]], budget: int) -> list[Choice]:
    """Least total cost with total bytes <= ``budget`` (exact on the byte grid)."""
    import numpy as np

    _check(tensors, budget)
    unit = max(1, -(-budget // GRID_UNITS))
    capacity = budget // unit
    names = list(tensors)
    best = np.zeros(capacity + 1)  # least cost of the tensors so far within k units
    picks = []
    for name in names:
        options = tensors[name]
        new = np.full(capacity + 1, np.inf)
        pick = np.full(capacity + 1, -1, dtype=np.int16)
        for index, option in enumerate(options):
            units = -(-option.stored_bytes // unit)
            if units > capacity:
                continue
            candidate = np.full(capacity + 1, np.inf)
            candidate[units:] = best[: capacity + 1 - units] + option.cost
            better = candidate < new
            new[better] = candidate[better]
            pick[better] = index
        best = new
        picks.append(pick)
    if not np.isfinite(best[capacity]):
        raise BudgetError(
            f"no choice of options fits {budget} bytes once each option's bytes are rounded "
            f"up to the {unit}-byte grid"
        )
    choices = []
    k = capacity
    for name, pick in zip(reversed(names), reversed(picks), strict=True):
        option = tensors[name][int(pick[k])]
        choices.append(Choice(name, option))
        k -= -(-option.stored_bytes // unit)
    return list(reversed(choices))


def greedy(tensors: dict[str, list[Option]], budget: int) -> list[Choice]:
    """Start each tensor at its least-cost option (ties: fewest bytes); while over budget,
    take the byte-saving move of least added cost per byte saved."""
    _check(tensors, budget)
    current = {
        name: min(options, key=lambda o: (o.cost, o.stored_bytes))
        for name, options in tensors.items()
    }
    total = sum(o.stored_bytes for o in current.values())
    while total > budget:
        moves = [
            ((option.cost - current[name].cost) / saved, name, option)
            for name, options in tensors.items()
            for option in options
            if (saved := current[name].stored_bytes - option.stored_bytes) > 0
        ]
        if not moves:
            raise BudgetError(f"no move saves bytes and {total} > {budget} bytes")
        _, name, option = min(moves, key=lambda m: (m[0], m[1], m[2].setting))
        total -= current[name].stored_bytes - option.stored_bytes
        current[name] = option
    return [Choice(name, current[name]) for name in tensors]


SEARCHES = {"knapsack": knapsack, "greedy": greedy}


def search(tensors: dict[str, list[Option]], budget: int, method: SearchMethod) -> list[Choice]:
    return SEARCHES[method](tensors, budget)
