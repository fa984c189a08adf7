"""Candidate cue families for the 10 m change model, held out by city (issue 13; measures, does not ship).

The wrong 10 m detections on the OSCD dev cities are of a different kind per city (standing office roofs
that brightened in Cupertino, standing towers under a hazy first date and the sea in Hong Kong, farm
fields and bare earth in Beihai). Each family below is added to :func:`sitewatch.s2change.features`
(all five bands), the logistic of ``benchmarks/train_s2change.py`` is fitted on four cities and scored
on the fifth, the presence thresholds are chosen on the pooled held-out maps as the training script
does, and the pooled pixel P / R / F1 and label objects found are printed, with each city's own and its
pixel AUC. Families (one letter each, combined as ``AB`` etc.; ``-`` is the model as shipped):

- ``A`` structure persistence (``s2change.STRUCT_CUES``): per-window correlation of the two dates'
  gradient magnitude and of their high-passed brightness over 30 and 50 m, and the window's contrast
  change against the site's;
- ``D`` the same in the infrared (mean of nir and swir16 in scene units), which haze scatters little;
- ``B`` soil and water: bare-soil index ((swir16 + red) - (nir + blue)) / (...) of both dates and its
  change, NDWI of both dates, 5x5 mean NDVI of both dates; ``S``: the soil index alone; ``W``: NDWI alone;
- ``C`` the spectral angle between the dates and its departure from a 21x21 mean.

Run: ``python benchmarks/s2_cues.py - A B AB ABC D AD ADW AW`` (about 1-2 min a set on 2 cores;
the pairs are read once and cached in ``--cache``). Choosing among many families on the same five
cities is itself a fit: say how many were tried.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import real  # noqa: E402
import train_s2change as T  # noqa: E402

from sitewatch import pixelmodel, s2change  # noqa: E402
from sitewatch.testbed.scoring import object_recall  # noqa: E402

BANDS = s2change.BANDS
_mean = pixelmodel.masked_mean
_nd = s2change._nd


def _bsi(x: dict) -> np.ndarray:
    return _nd(x["swir16"] + x["red"], x["nir"] + x["blue"])


def extra(p: dict, fam: str) -> dict[str, np.ndarray]:
    """The cues of families ``D``, ``B``, ``S``, ``W``, ``C`` (``A`` is ``features(structure=True)``)."""
    ref, cur, both = p["ref"], p["cur"], p["both"]
    w = both.astype(np.float32)
    r, c = s2change.normalise(ref, cur, both, BANDS)
    r = {b: v * w for b, v in r.items()}
    c = {b: v * w for b, v in c.items()}
    out: dict[str, np.ndarray] = {}
    if "D" in fam:
        ir_r, ir_c = (r["nir"] + r["swir16"]) / 2, (c["nir"] + c["swir16"]) / 2
        gr, gc = s2change._grad(ir_r, w), s2change._grad(ir_c, w)
        out["gcorr_ir3"], out["gcorr_ir5"] = s2change._corr(gr, gc, w, 3), s2change._corr(gr, gc, w, 5)
        out["hcorr_ir5"] = s2change._corr((ir_r - _mean(ir_r, w, 7)) * w, (ir_c - _mean(ir_c, w, 7)) * w, w, 5)
    if "B" in fam or "S" in fam:
        out["bsi_ref"], out["bsi_cur"] = _bsi(ref) * w, _bsi(cur) * w
        out["d_bsi"] = out["bsi_cur"] - out["bsi_ref"]
    if "B" in fam or "W" in fam:
        out["ndwi_ref"], out["ndwi_cur"] = _nd(ref["green"], ref["nir"]) * w, _nd(cur["green"], cur["nir"]) * w
    if "B" in fam:
        out["ndvi5_ref"] = _mean(_nd(ref["nir"], ref["red"]) * w, w, 5)
        out["ndvi5_cur"] = _mean(_nd(cur["nir"], cur["red"]) * w, w, 5)
    if "C" in fam:
        vr = np.stack([np.nan_to_num(ref[b]) for b in BANDS])
        vc = np.stack([np.nan_to_num(cur[b]) for b in BANDS])
        cos = (vr * vc).sum(0) / np.maximum(np.sqrt((vr ** 2).sum(0) * (vc ** 2).sum(0)), 1e-6)
        ang = np.arccos(np.clip(cos, -1, 1)) * w
        out["sam"], out["sam_hp"] = ang, (ang - _mean(ang, w, s2change.HAZE_WIN)) * w
    return {k: np.clip(np.nan_to_num(v), -20, 20).astype(np.float32) for k, v in out.items()}


def run(pairs: dict, fam: str) -> None:
    from sklearn.metrics import roc_auc_score

    t0 = time.perf_counter()
    take = T.balanced_sample(pairs)  # the training script's sample, drawn the same way
    feats = {n: {**s2change.features(p["ref"], p["cur"], p["both"], BANDS, structure="A" in fam), **extra(p, fam)}
             for n, p in pairs.items()}
    names, xs, ys = T.design_sets(feats, pairs)
    held = {}
    for name in pairs:
        others = [n for n in pairs if n != name]
        m = T.fit(np.concatenate([xs[n][take[n]] for n in others]), np.concatenate([ys[n][take[n]] for n in others]))
        z = (xs[name] - np.asarray(m["mean"], np.float32)) / np.asarray(m["scale"], np.float32)
        logit = z @ np.asarray(m["coef"], np.float32) + m["intercept"]
        pr = (1 / (1 + np.exp(-np.clip(logit, -30, 30)))).reshape(pairs[name]["both"].shape)
        held[name] = np.where(pairs[name]["both"], pr, 0).astype(np.float32)
    thr, grow = T.choose(held, pairs)
    tot, found, nobj, rows = np.zeros(3), 0, 0, []
    for n, p in pairs.items():
        pred = T.floor(s2change.hysteresis(held[n], thr, grow)) & p["both"]
        cc = T.counts(pred, p["label"], p["both"])
        tot += cc
        f, k = object_recall(pred, real._drop_specks(p["label"]))
        found, nobj = found + f, nobj + k
        auc = roc_auc_score(p["label"][p["both"]], held[n][p["both"]])
        P, R, F = T.prf(*cc)
        rows.append(f"| {n} | {P:.2f} | {R:.2f} | {F:.2f} | {f}/{k} | {auc:.3f} |")
    P, R, F = T.prf(*tot)
    print(f"\n## {fam or 'as shipped'}: {len(names)} cues, threshold {thr}, grown to {grow} "
          f"({time.perf_counter() - t0:.0f} s)\n\n| city | P | R | F1 | objects | pixel AUC |\n|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"| pooled | {P:.3f} | {R:.3f} | **{F:.3f}** | {found}/{nobj} | |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("families", nargs="+", help="e.g. - A B AB (- : as shipped)")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "sitewatch-s2cues-pairs.pkl"))
    args = ap.parse_args()
    cache = Path(args.cache)
    if cache.exists():
        pairs = pickle.loads(cache.read_bytes())
    else:
        work = Path(tempfile.mkdtemp(prefix="sitewatch-s2cues-"))
        pairs = {c.name: T.read_pair(c, work / c.name) for c in real.oscd_cases(work / "tif")}
        cache.write_bytes(pickle.dumps(pairs))
    for fam in args.families:
        run(pairs, "" if fam == "-" else fam)


if __name__ == "__main__":
    main()
