"""Maximum-weight independent set on the small conflict graphs of one tomogram's layers.

Graphs are split into connected components. A component of at most ``exact_limit``
vertices is solved exactly by branch and bound on bitmasks: branch on the heaviest
remaining vertex, skip the "leave it out" branch when it has no remaining neighbour (taking
it is then never worse), prune when the current weight plus everything still available
cannot beat the best. Larger components use the GWMIN greedy (repeatedly take the vertex
maximising weight / (remaining degree + 1)), which guarantees at least
sum(w / (deg + 1)) and is exact on the star-shaped "container hides many" conflicts that
dominate here.
"""

from __future__ import annotations

import numpy as np


def components(adjacency: np.ndarray) -> list[list[int]]:
    n = adjacency.shape[0]
    seen = [False] * n
    out = []
    for start in range(n):
        if seen[start]:
            continue
        stack, comp = [start], []
        seen[start] = True
        while stack:
            v = stack.pop()
            comp.append(v)
            for u in np.flatnonzero(adjacency[v]):
                if not seen[u]:
                    seen[u] = True
                    stack.append(int(u))
        out.append(sorted(comp))
    return out


def exact(weights: np.ndarray, adjacency: np.ndarray) -> list[int]:
    """Exact maximum-weight independent set (vertex indices, ascending)."""
    n = len(weights)
    order = sorted(range(n), key=lambda v: (-weights[v], v))  # bit k = order[k], heaviest first
    w = [float(weights[v]) for v in order]
    pos = {v: k for k, v in enumerate(order)}
    nbr = [0] * n
    for a in range(n):
        for b in np.flatnonzero(adjacency[order[a]]):
            if int(b) != order[a]:
                nbr[a] |= 1 << pos[int(b)]
    best_w, best_set = -1.0, 0

    def remaining(mask: int) -> float:
        total = 0.0
        while mask:
            low = mask & -mask
            total += w[low.bit_length() - 1]
            mask ^= low
        return total

    def search(avail: int, cur_w: float, cur_set: int) -> None:
        nonlocal best_w, best_set
        if avail == 0:
            if cur_w > best_w:
                best_w, best_set = cur_w, cur_set
            return
        if cur_w + remaining(avail) <= best_w:
            return
        low = avail & -avail
        k = low.bit_length() - 1
        search(avail & ~low & ~nbr[k], cur_w + w[k], cur_set | low)
        if nbr[k] & avail:
            search(avail & ~low, cur_w, cur_set)

    search((1 << n) - 1, 0.0, 0)
    return sorted(order[k] for k in range(n) if best_set >> k & 1)


def greedy(weights: np.ndarray, adjacency: np.ndarray) -> list[int]:
    """GWMIN greedy independent set (vertex indices, ascending)."""
    alive = np.ones(len(weights), dtype=bool)
    adj = adjacency.astype(bool) & ~np.eye(len(weights), dtype=bool)
    chosen = []
    while alive.any():
        degree = (adj & alive).sum(axis=1)
        score = np.where(alive, weights / (degree + 1.0), -np.inf)
        v = int(np.argmax(score))
        chosen.append(v)
        alive &= ~adj[v]
        alive[v] = False
    return sorted(chosen)


def solve(weights: np.ndarray, adjacency: np.ndarray, exact_limit: int) -> list[int]:
    """Maximum-weight independent set: exact per component up to ``exact_limit``, else greedy."""
    chosen: list[int] = []
    for comp in components(adjacency):
        if len(comp) == 1:
            chosen.append(comp[0])
            continue
        sub_w, sub_a = weights[comp], adjacency[np.ix_(comp, comp)]
        picked = exact(sub_w, sub_a) if len(comp) <= exact_limit else greedy(sub_w, sub_a)
        chosen.extend(comp[k] for k in picked)
    return sorted(chosen)
