"""Candidate cue families for the 0.3-2 m change model, measured nested and held out on LEVIR-CD.

Issue 13 asks whether cues that tell roads and graded lots from roofs lift LEVIR-CD precision. Each
family below is added to version 2's 33 cues (:func:`sitewatch.finechange.features` less the six
version 3 added, which are ``sat`` and ``shadir`` here), the trees are fitted as
``train_finechange.py`` fits them (leave-one-pair-out, same pixels per pair), and the figure printed is
the nested one: each pair's presence settings chosen on the other ten pairs' held-out maps, so no pair
votes for the settings it is scored with. The training pixels are drawn at random (``--seeds``): the
same cues fitted on another draw move the nested F1 by ~0.02 on these 11 pairs, as much as any family
here, so a family is judged over several draws, never one (version 3's two families: better on four of
five draws, +0.019 F1 on average; benchmarks/README.md section 2).

Families (each date's and their change unless said):

- ``ctx``: change vector and brightness change over 25 m, texture over 12.5 m (graded lots change
  over wide areas, a house over a few metres);
- ``line``: structure-tensor coherence over 4.5 and 12.5 m of brightness, and of its change (a road
  is one long edge direction, a roof two);
- ``sat``: colour saturation (max - min) / max (grey roofs and concrete against soil and lawn);
- ``shadir``: dark ground on one side of a pixel only, the most lopsided of four axes at 3 m (a roof's
  shadow falls away from the sun; a road or a graded lot casts none).

Run: ``python benchmarks/fine_cues.py [--seeds 13,14,15] none sat shadir sat+shadir ...``
(about 4 minutes a family and seed on 2 cores at load ~2). Nothing is written.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))

import real  # noqa: E402
import train_finechange as tf  # noqa: E402
import train_s2change as s2t  # noqa: E402

from sitewatch import finechange, pixelmodel  # noqa: E402

_mean, _tex, _win = pixelmodel.masked_mean, pixelmodel.local_spread, finechange._win
#: The cues version 3 added (``sat`` and ``shadir`` here): left out of the base, which is version 2's 33.
VERSION3_CUES = ("sat_ref", "sat_cur", "sat_d", "shadow_side_ref", "shadow_side_cur", "shadow_side_d")


def _robust(img: dict, tag: str, u: dict, w: np.ndarray) -> dict[str, np.ndarray]:
    return {b: ((np.nan_to_num(img[b].astype(np.float32)) - u[f"{tag}.{b}"][0]) / u[f"{tag}.{b}"][1]) * w
            for b in finechange.BANDS}


def _coherence(x: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    gy, gx = ndimage.sobel(x, 0) / 8, ndimage.sobel(x, 1) / 8
    jxx, jyy, jxy = _mean(gx * gx, w, k), _mean(gy * gy, w, k), _mean(gx * gy, w, k)
    return (np.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2) / (jxx + jyy + 1e-3)).astype(np.float32)


#: the two families version 3 ships are the shipped code itself (one definition)
_saturation, _shadow_side = finechange._saturation, finechange._shadow_side


def extra(p: dict, families: set[str]) -> dict[str, np.ndarray]:
    """The candidate families' cues for one pair (as signed logs, like the shipped cues)."""
    ref, cur, both, res = p["ref"], p["cur"], p["both"], p["res"]
    u, w = finechange.units(ref, cur, both), both.astype(np.float32)
    r, c = _robust(ref, "ref", u, w), _robust(cur, "cur", u, w)
    br_r, br_c = sum(r.values()) / 3, sum(c.values()) / 3
    k1, k2, k3 = (_win(m, res) for m in finechange.SCALES_M)
    out: dict[str, np.ndarray] = {}
    if "ctx" in families:
        kx = _win(25.0, res)
        out["cva_xl"] = _mean(np.sqrt(sum((c[b] - r[b]) ** 2 for b in finechange.BANDS) / 3), w, kx)
        out["bright_d_xl"] = _mean(br_c - br_r, w, kx)
        tr, tc = _tex(br_r, w, k3), _tex(br_c, w, k3)
        out["tex_ref_l"], out["tex_cur_l"], out["tex_d_l"] = tr, tc, tc - tr
    if "line" in families:
        for k, tag in ((k2, "m"), (k3, "l")):
            cr, cc = _coherence(br_r, w, k) * w, _coherence(br_c, w, k) * w
            out[f"coh_ref_{tag}"], out[f"coh_cur_{tag}"], out[f"coh_d_{tag}"] = cr, cc, cc - cr
            out[f"coh_chg_{tag}"] = _coherence(br_c - br_r, w, k) * w
    if "sat" in families:
        out["sat_ref"], out["sat_cur"] = _mean(_saturation(ref) * w, w, k1), _mean(_saturation(cur) * w, w, k1)
        out["sat_d"] = out["sat_cur"] - out["sat_ref"]
    if "shadir" in families:
        ar = _shadow_side(finechange._dark(br_r, w, res), res) * w
        ac = _shadow_side(finechange._dark(br_c, w, res), res) * w
        out["ashadow_ref"], out["ashadow_cur"], out["ashadow_d"] = ar, ac, ac - ar
    return {k: np.arcsinh(np.nan_to_num(v)).astype(np.float32) for k, v in out.items()}


def measure(pairs: dict[str, dict], families: set[str], seed: int) -> tuple[float, int, int]:
    """Nested held-out pooled F1 and objects with these families added, training pixels drawn by ``seed``."""
    cues = {n: {**{k: v for k, v in p["f"].items() if k not in VERSION3_CUES}, **extra(p, families)}
            for n, p in pairs.items()}
    names = sorted(next(iter(cues.values())))
    rng = np.random.default_rng(seed)
    xs, ys = {}, {}
    for n, p in pairs.items():  # as train_finechange.main draws them
        pos = np.flatnonzero((p["label"] & p["both"]).ravel())
        neg = np.flatnonzero((~p["label"] & p["both"]).ravel())
        pos = rng.choice(pos, size=min(pos.size, tf.PER_PAIR // 2), replace=False)
        neg = rng.choice(neg, size=min(neg.size, tf.PER_PAIR - pos.size), replace=False)
        take = np.concatenate([pos, neg])
        xs[n], ys[n] = np.stack([cues[n][k].ravel()[take] for k in names], 1), p["label"].ravel()[take]
    held = {}
    for n in pairs:
        others = [m for m in pairs if m != n]
        doc = {"cues": names, "threshold": 0.5,
               **tf.fit_trees(np.concatenate([xs[m] for m in others]), np.concatenate([ys[m] for m in others]))}
        held[n] = finechange.probability(cues[n], pairs[n]["both"], doc)
    rows = tf.grid(held, pairs)
    chosen = tf.nested(rows, list(pairs))
    index = {id(doc): per for doc, per in rows}
    t = np.sum([index[id(chosen[n])][n] for n in pairs], axis=0)
    return s2t.prf(*t[:3])[2], int(t[3]), int(t[4])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("families", nargs="+", help="none, or families joined by +: ctx, line, sat, shadir")
    ap.add_argument("--seeds", default=str(tf.SEED), help="training-pixel draws, comma-separated (default 13)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sitewatch-finecues-"))
    (work / "tif").mkdir(parents=True)
    pairs = {c.name: tf.read_pair(c, work / c.name) for c in real.levir_cases(work / "tif")}
    print("| cues added | seed | nested pooled F1 | objects |\n|---|---|---|---|")
    for fam in args.families:
        families = set() if fam == "none" else set(fam.split("+"))
        for seed in (int(s) for s in args.seeds.split(",")):
            t0 = time.perf_counter()
            f1, found, n = measure(pairs, families, seed)
            print(f"| {fam} | {seed} | {f1:.3f} | {found}/{n} | ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
