"""Speed of the NumPy ports of scikit-image's skeletonize and phase_cross_correlation.

    .venv/bin/python benchmarks/skeleton.py [--repeat 9]

sitewatch ports the two scikit-image functions it used (``sitewatch.morphology``,
``sitewatch.registration``) so the core install does without scikit-image. The ports give
identical results (tests/test_morphology.py, tests/test_registration.py); this prints what they
cost: best of ``--repeat`` runs, in ms, next to scikit-image's when it is installed. Masks:
"blobs" (smoothed noise cut at its median: half the pixels set in objects ~10 px thick,
many thinning passes: a worst case) and "walls" (bands 2-6 px wide at any angle, as the
wall and fence maps are), at 256 and 1024 px square; registration as align calls it
(float32, ``upsample_factor=20``, no normalisation).
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sitewatch.morphology import skeletonize  # noqa: E402
from sitewatch.registration import phase_cross_correlation  # noqa: E402


def masks(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    smooth = ndimage.gaussian_filter(rng.random((n, n)), 4)
    yy, xx = np.mgrid[:n, :n]
    walls = np.zeros((n, n), dtype=bool)
    for _ in range(max(4, n // 32)):
        a, w = rng.uniform(0, np.pi), rng.uniform(1, 3)
        d = (yy - rng.uniform(0, n)) * np.cos(a) - (xx - rng.uniform(0, n)) * np.sin(a)
        walls |= np.abs(d) <= w
    return {"blobs": smooth > np.median(smooth), "walls": walls}


def best_ms(f, repeat: int) -> float:
    f()  # warm: FFT plans and first allocations are not what a run pays each time
    return min(timeit.repeat(f, number=1, repeat=repeat)) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=9)
    args = ap.parse_args()
    try:
        from skimage.morphology import skeletonize as sk_skeletonize
        from skimage.registration import phase_cross_correlation as sk_pcc
    except ImportError:
        sk_skeletonize = sk_pcc = None
    rng = np.random.default_rng(0)
    print(f"load average {os.getloadavg()[0]:.2f}; best of {args.repeat}; ms")
    print(f"{'what':<34}{'sitewatch':>10}{'skimage':>10}{'ratio':>8}")

    def row(name: str, ours, theirs) -> None:
        a = best_ms(ours, args.repeat)
        if theirs is None:
            print(f"{name:<34}{a:>10.1f}{'-':>10}{'-':>8}")
            return
        b = best_ms(theirs, args.repeat)
        print(f"{name:<34}{a:>10.1f}{b:>10.1f}{a / b:>8.1f}")

    for n in (256, 1024):
        for kind, m in masks(n, rng).items():
            label = f"skeletonize {kind} {n}² ({m.mean():.0%} set)"
            row(label, lambda: skeletonize(m), None if sk_skeletonize is None else lambda: sk_skeletonize(m))
    for n in (256, 1024):
        tex = ndimage.gaussian_filter(rng.random((n + 16, n + 16)), 1.5).astype(np.float32)
        moved = ndimage.shift(tex, (1.3, -0.7), order=1, mode="nearest")
        ref, img = tex[8:-8, 8:-8], moved[8:-8, 8:-8]
        kw = {"upsample_factor": 20, "normalization": None}
        row(f"phase_cross_correlation {n}²", lambda: phase_cross_correlation(ref, img, **kw),
            None if sk_pcc is None else lambda: sk_pcc(ref, img, **kw))


if __name__ == "__main__":
    main()
