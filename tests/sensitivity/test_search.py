"""The budgeted search: exact on small instances, never over the budget."""

from __future__ import annotations

import itertools
import random

import pytest
from coreml_bench.sensitivity.search import GRID_UNITS, BudgetError, Option, greedy, knapsack


def _instance(seed: int, tensors: int = 5) -> dict[str, list[Option]]:
    rng = random.Random(seed)
    instance = {}
    for t in range(tensors):
        dense = rng.randint(2_000, 200_000)
        options = [Option("fp16", dense, 0.0)]
        for bits in (8, 6, 4, 2):
            options.append(Option(f"{bits}bit", dense * bits // 16 + 64, rng.random() / bits))
        instance[f"t{t}"] = options
    return instance


def _brute_force(instance: dict[str, list[Option]], budget: int) -> float:
    best = float("inf")
    for combo in itertools.product(*instance.values()):
        if sum(o.stored_bytes for o in combo) <= budget:
            best = min(best, sum(o.cost for o in combo))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_knapsack_matches_brute_force_within_the_grid(seed: int) -> None:
    instance = _instance(seed)
    dense = sum(options[0].stored_bytes for options in instance.values())
    budget = dense // 4
    choices = knapsack(instance, budget)
    assert [c.tensor for c in choices] == list(instance)
    assert sum(c.option.stored_bytes for c in choices) <= budget
    cost = sum(c.option.cost for c in choices)
    # Bytes are rounded up to a grid of budget/GRID_UNITS, so the optimum of a budget shrunk by
    # one grid step per tensor is never beaten by the exact optimum at the full budget.
    step = -(-budget // GRID_UNITS)
    assert _brute_force(instance, budget) <= cost + 1e-12
    assert cost <= _brute_force(instance, budget - step * len(instance)) + 1e-12


@pytest.mark.parametrize("seed", range(4))
def test_greedy_meets_the_budget_and_is_no_better_than_exact(seed: int) -> None:
    instance = _instance(seed)
    budget = sum(options[0].stored_bytes for options in instance.values()) // 5
    choices = greedy(instance, budget)
    assert sum(c.option.stored_bytes for c in choices) <= budget
    assert _brute_force(instance, budget) <= sum(c.option.cost for c in choices) + 1e-12


def test_a_budget_below_every_smallest_option_is_refused() -> None:
    instance = _instance(0)
    smallest = sum(min(o.stored_bytes for o in options) for options in instance.values())
    with pytest.raises(BudgetError, match="smallest options"):
        knapsack(instance, smallest - 1)
    with pytest.raises(BudgetError, match="smallest options"):
        greedy(instance, smallest - 1)


def test_free_options_are_taken_when_they_fit() -> None:
    instance = {"a": [Option("fp16", 100, 0.0), Option("4bit", 30, 0.5)]}
    assert knapsack(instance, 100)[0].option.setting == "fp16"
    assert knapsack(instance, 99)[0].option.setting == "4bit"
