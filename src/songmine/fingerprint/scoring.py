"""Offset voting and what the votes are worth: the Poisson null model and the runner-up margin.

Every hit of a query hash votes for ``(track, offset = t_track - t_query)``. A
true match piles its votes into one offset bin (±``tolerance`` frames); chance
hits spread over all offsets of all tracks. ``confidence`` is the probability
that no bin reached the winner's count by chance, under a Poisson null model of
chance offset agreement (``docs/identify.md``).
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammainc

__all__ = [
    "vote",
    "null_confidence",
    "expected_votes",
    "confidence_from",
    "margin_confidence",
    "other_offsets",
    "distinct_votes",
]


#: Offsets are shifted by this before packing ``(track, offset)`` into one int64 key.
_OFFSET_BIAS = 1 << 31

#: How :func:`vote` sorts its keys. A lookup returns each hash's hits as a sorted run (a hash's
#: postings are stored by track, then time), and numpy's stable sort (timsort for int64) merges
#: the runs instead of sorting from scratch. The runs grow with the index: on the coarse probes'
#: lookups it takes 0.6x quicksort's time at 10,000 hours, 0.75x at 1,000, about the same on a
#: small index (``benchmarks/search_costs.py``). Equal keys are equal: the result is the same.
_KEY_SORT = "stable"


def vote(
    query_times: np.ndarray,
    hit_qpos: np.ndarray,
    hit_tracks: np.ndarray,
    hit_times: np.ndarray,
    *,
    tolerance: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Best offset bin of every track that got hits.

    Returns
    -------
    tracks, offsets, votes, track_hits : np.ndarray [shape=(k,)]
        Per track with hits: its best offset (frames), the hits within
        ±tolerance of it, and all its hits; sorted by ``votes`` descending
        (ties: lower track id first).
    n_tracks_hit : np.ndarray
        Scalar array, number of distinct tracks with hits.
    """
    if hit_qpos.size == 0:
        z = np.zeros(0, np.int64)
        return z, z, z, z, np.int64(0)
    offs = hit_times.astype(np.int64) - query_times[hit_qpos].astype(np.int64)
    key = (hit_tracks.astype(np.int64) << 32) | (offs + _OFFSET_BIAS)
    key.sort(kind=_KEY_SORT)
    # distinct (track, offset) bins and their hits: sorted by track, then offset
    starts = _run_starts(key)
    uniq = key[starts]
    counts = np.diff(np.append(starts, key.shape[0]))
    score = _window_scores(uniq, counts, tolerance)
    tr = uniq >> 32
    first = _run_starts(tr)
    tracks = tr[first]
    votes, offsets, track_hits = _best_bins(uniq, counts, score, first, starts, key.shape[0])
    rank = np.argsort(-votes, kind="stable")
    return tracks[rank], offsets[rank], votes[rank], track_hits[rank], np.int64(first.size)


def _run_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Positions where a run of equal values begins in ``sorted_keys`` (non-empty)."""
    new = np.empty(sorted_keys.shape[0], dtype=bool)
    new[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=new[1:])
    return np.flatnonzero(new)


#: Below this many offset bins :func:`_best_bins` reduces every bin: fewer array calls.
_SPARSE_MIN_BINS = 16_384


def _best_bins(
    uniq: np.ndarray, counts: np.ndarray, score: np.ndarray, first: np.ndarray, starts: np.ndarray, n_hits: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each track's best bin (the highest score, then the lowest offset) and its hits: ``(votes, offsets, hits)``.

    Chance hits land alone: almost every bin of a big lookup scores 1, and a track
    whose bins all do has its first (lowest) offset as best. There only the bins
    scoring more are reduced per track, a few percent of them instead of every one;
    a small lookup, or one made mostly of the clip's own votes, is reduced whole.
    """
    low = np.int64(0xFFFFFFFF)
    is_rich = score > 1
    if score.size < _SPARSE_MIN_BINS or 4 * np.count_nonzero(is_rich) > score.size:
        best = np.maximum.reduceat((score << 32) | (low - (uniq & low)), first)
        return best >> 32, (low - (best & low)) - _OFFSET_BIAS, np.add.reduceat(counts, first)
    votes = np.ones(first.size, dtype=np.int64)
    offsets = (uniq[first] & low) - _OFFSET_BIAS
    rich = np.flatnonzero(is_rich)
    if rich.size:
        owner = np.searchsorted(first, rich, side="right") - 1  # the track of each such bin
        group = _run_starts(owner)
        best = np.maximum.reduceat((score[rich] << 32) | (low - (uniq[rich] & low)), group)
        votes[owner[group]] = best >> 32
        offsets[owner[group]] = (low - (best & low)) - _OFFSET_BIAS
    return votes, offsets, np.diff(np.append(starts[first], n_hits))


def _window_scores(keys: np.ndarray, counts: np.ndarray, tolerance: int) -> np.ndarray:
    """Hits within ±``tolerance`` of each sorted ``(track << 32) | offset`` bin (its own and its neighbours')."""
    score = counts.copy()
    for d in range(1, tolerance + 1):  # loop over the (tiny) tolerance window
        for j in range(1, d + 1):  # bins i and i + j lie d apart
            m = np.flatnonzero(keys[j:] - keys[:-j] == d)
            score[m] += counts[m + j]
            score[m + j] += counts[m]
    return score


def _poisson_sf(k: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """P(X >= k) for X ~ Poisson(lam), for real-valued k (regularised gamma)."""
    k = np.asarray(k, dtype=np.float64)
    lam = np.asarray(lam, dtype=np.float64)
    return np.where(k <= 0, 1.0, gammainc(np.maximum(k, 1e-12), lam))


def null_confidence(
    votes: np.ndarray,
    track_hits: np.ndarray,
    span_frames: np.ndarray,
    *,
    n_tests: float,
    width: int,
    overdispersion: float,
    min_rate: float,
) -> np.ndarray:
    """P(the best bin is not chance): ``exp(-n_tests * P(Poisson(lam) >= votes / phi))``.

    Under the null, a track's other hits fall uniformly over the
    ``span_frames`` possible offsets, so a ``width``-frame bin expects
    ``lam = width * max(track_hits - votes, ...) / span_frames`` hits. Counts are
    divided by ``phi = overdispersion`` (hits come in clusters); ``n_tests`` is
    the number of bins looked at (all offsets of all hit tracks, all speeds).
    """
    lam = expected_votes(votes, track_hits, span_frames, width=width, min_rate=min_rate)
    return confidence_from(votes, lam, n_tests=n_tests, overdispersion=overdispersion)


def expected_votes(votes, track_hits, span_frames, *, width: int, min_rate: float) -> np.ndarray:
    """Chance votes expected in one ``width``-frame offset bin of each track."""
    other = np.maximum(np.asarray(track_hits) - np.asarray(votes), 0).astype(np.float64)
    return np.maximum(width * other / np.maximum(span_frames, 1.0), min_rate)


def confidence_from(votes, lam, *, n_tests: float, overdispersion: float) -> np.ndarray:
    """``exp(-n_tests * P(Poisson(lam / phi) >= votes / phi))``."""
    phi = overdispersion
    p = _poisson_sf(np.asarray(votes, dtype=np.float64) / phi, np.asarray(lam, dtype=np.float64) / phi)
    return np.exp(-n_tests * p)


def margin_confidence(v1: float, v2: float, *, alpha: float, n_tests: float, floor: int = 1) -> float:
    """Confidence from the margin of the best track over the runner-up track.

    Under the null (the clip is in none of the tracks) every track's best bin
    is a chance maximum, and the ratio of the largest to the second largest
    of such counts has a Pareto tail, ``P(ratio >= r) = r ** -alpha`` (it
    does for any sample with a power-law tail, whatever its size). The
    confidence is ``exp(-n_tests * r ** -alpha)`` with ``r = v1 / max(v2, floor)``.

    Examples
    --------
    >>> round(margin_confidence(20, 8, alpha=7.8, n_tests=300), 2)
    0.79
    >>> margin_confidence(20, 4, alpha=7.8, n_tests=300) > 0.99
    True
    """
    r = float(v1) / float(max(v2, floor, 1e-12))
    if r <= 1.0:
        return 0.0
    return float(np.exp(-n_tests * r**-alpha))


def other_offsets(
    t: np.ndarray,
    qpos: np.ndarray,
    hit_tracks: np.ndarray,
    hit_times: np.ndarray,
    tracks: np.ndarray,
    offsets: np.ndarray,
    *,
    n: int,
    sep: int,
    tolerance: int = 1,
) -> list[tuple[int, ...]]:
    """For each candidate ``(tracks[i], offsets[i])``: the ``n`` next best offsets of that track.

    Bins are scored like :func:`vote` (hits within ±``tolerance``); each one
    returned lies at least ``sep`` frames from the candidate's offset and from
    the others (a different passage, not the same one's edge).
    """
    tracks = np.asarray(tracks).astype(np.int64)
    if tracks.size == 0 or hit_tracks.size == 0 or n < 1:
        return [()] * tracks.size
    sel, cand = _hits_of(tracks, hit_tracks)
    offs = hit_times[sel].astype(np.int64) - t[qpos[sel]].astype(np.int64)
    key, counts = np.unique((cand << 32) | (offs + _OFFSET_BIAS), return_counts=True)
    score = _window_scores(key, counts, tolerance)
    who = key >> 32
    out = []
    for i in range(tracks.size):  # a handful of candidates
        a, b = np.searchsorted(who, [i, i + 1])
        o = (key[a:b] & 0xFFFFFFFF) - _OFFSET_BIAS
        chosen = [int(offsets[i])]
        for j in np.argsort(-score[a:b], kind="stable")[: 64 * (n + 1)]:  # best bins first, a few dozen at most
            if all(abs(int(o[j]) - c) >= sep for c in chosen):
                chosen.append(int(o[j]))
                if len(chosen) > n:
                    break
        out.append(tuple(chosen[1:]))
    return out


def distinct_votes(
    h: np.ndarray,
    t: np.ndarray,
    qpos: np.ndarray,
    hit_tracks: np.ndarray,
    hit_times: np.ndarray,
    tracks: np.ndarray,
    offsets: np.ndarray,
    *,
    tolerance: int = 1,
) -> np.ndarray:
    """For each candidate ``(tracks[i], offsets[i])``: distinct hash *values* among its votes.

    A sustained tone or a repeated pattern makes one hash recur frame after
    frame; against a similar passage of another track its repeats pile up in
    one offset bin. A true match agrees on many *different* landmarks, so
    counting distinct values separates the two.
    """
    tracks = np.asarray(tracks).astype(np.int64)
    if tracks.size == 0 or hit_tracks.size == 0:
        return np.zeros(tracks.size, dtype=np.int64)
    sel, cand = _hits_of(tracks, hit_tracks)
    qp = qpos[sel]
    offs = hit_times[sel].astype(np.int64) - t[qp].astype(np.int64)
    inside = np.abs(offs - offsets[cand]) <= tolerance
    pairs = np.unique((cand[inside] << 32) | h[qp[inside]].astype(np.int64))
    return np.bincount((pairs >> 32).astype(np.int64), minlength=tracks.size)


#: Candidate track ids below this are matched to hits through a lookup table (``_hits_of``).
_LUT_MAX_TRACK = 1 << 24


def _hits_of(tracks: np.ndarray, hit_tracks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The hits of the candidate ``tracks`` (int64, non-empty): their positions, and each one's candidate index.

    A track listed twice counts as its first occurrence.
    """
    top = int(tracks.max())
    if 0 <= int(tracks.min()) and top < _LUT_MAX_TRACK:
        # each hit's candidate through a table indexed by track id: one gather over the hits
        # instead of a binary search per hit
        lut = np.full(top + 2, -1, dtype=np.int64)
        lut[tracks[::-1]] = np.arange(tracks.size - 1, -1, -1)
        cand_all = lut[np.minimum(hit_tracks.astype(np.int64), top + 1)]
        sel = np.flatnonzero(cand_all >= 0)
        return sel, cand_all[sel]
    order = np.argsort(tracks, kind="stable")
    st = tracks[order]
    ht = hit_tracks.astype(np.int64)
    pos = np.minimum(np.searchsorted(st, ht), st.size - 1)
    sel = np.flatnonzero(st[pos] == ht)
    return sel, order[pos[sel]]
