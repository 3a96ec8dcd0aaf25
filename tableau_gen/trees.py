"""Rooted trees in canonical form, with order, density and symmetry.

A rooted tree is stored as the sorted tuple of its children's trees, so the
single node is ``()`` and ``[τ, τ]`` (a root with two leaves) is ``((), ())``.
Sorting the children makes equal trees compare and hash equal, which is what
keeps the generation free of duplicates.
"""

from __future__ import annotations

from collections import Counter
from functools import cache
from math import factorial, prod

RootedTree = tuple  # a sorted tuple of child RootedTrees; () is the single node

LEAF: RootedTree = ()


def graft(children) -> RootedTree:
    """Join ``children`` under a new root (Butcher's B+ operation)."""
    return tuple(sorted(children))


@cache
def order(tree: RootedTree) -> int:
    """Number of nodes |t|."""
    return 1 + sum(order(child) for child in tree)


@cache
def density(tree: RootedTree) -> int:
    """Density gamma(t): |t| times the densities of the child trees."""
    return order(tree) * prod(density(child) for child in tree)


@cache
def symmetry(tree: RootedTree) -> int:
    """Symmetry sigma(t): the order of the tree's automorphism group.

    A child that occurs k times contributes k! (its copies can be swapped)
    times its own symmetry to the power k.
    """
    result = 1
    for child, count in Counter(tree).items():
        result *= factorial(count) * symmetry(child) ** count
    return result


@cache
def trees_of_order(n: int) -> tuple[RootedTree, ...]:
    """List every rooted tree with exactly ``n`` nodes once, in a fixed order.

    Raises:
        ValueError: if ``n`` is below 1.

    Examples:
        >>> [len(trees_of_order(n)) for n in range(1, 9)]
        [1, 1, 2, 4, 9, 20, 48, 115]
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"`n` must be an integer >= 1, got {n!r}")
    if n == 1:
        return (LEAF,)
    # A tree of order n is a multiset of subtrees whose orders sum to n - 1.
    # Drawing the subtrees in non-increasing (order, index) sequence lists each
    # multiset exactly once.
    found = [graft(children) for children in _forests(n - 1, n - 1, None)]
    return tuple(sorted(found, key=_sort_key))


def _forests(total: int, max_order: int, max_index: int | None):
    """Yield multisets of trees with ``total`` nodes, largest subtrees first."""
    if total == 0:
        yield ()
        return
    for size in range(min(total, max_order), 0, -1):
        candidates = trees_of_order(size)
        last = len(candidates) - 1
        if size == max_order and max_index is not None:
            last = max_index
        for index in range(last, -1, -1):
            for rest in _forests(total - size, size, index):
                yield (candidates[index],) + rest


def _sort_key(tree: RootedTree):
    # Fewer children first, then by the children themselves: bushy trees last.
    return (len(tree), tree)


def trees_up_to(p: int) -> list[RootedTree]:
    """List the rooted trees with 1 to ``p`` nodes, by increasing order."""
    if not isinstance(p, int) or p < 1:
        raise ValueError(f"`p` must be an integer >= 1, got {p!r}")
    return [tree for n in range(1, p + 1) for tree in trees_of_order(n)]


def tree_to_str(tree: RootedTree) -> str:
    """Butcher's bracket notation: ``τ`` is a node, ``[t1, t2]`` grafts trees.

    Equal children are grouped with an exponent, so ``[τ, τ]`` prints ``[τ²]``.
    """
    if not tree:
        return "τ"
    parts = []
    for child, count in sorted(Counter(tree).items(), key=lambda item: item[0]):
        text = tree_to_str(child)
        parts.append(text if count == 1 else text + _superscript(count))
    return "[" + " ".join(parts) + "]"


def _superscript(number: int) -> str:
    return str(number).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))
