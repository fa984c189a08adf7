"""Where a model-only ``monitor`` run's CPU time goes, stage by stage (``model.py``, ``model_ab.py``)."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

#: Where a monitor run's time goes: (stage, [(module, attribute), ...]); each stage's time excludes the
#: stages called inside it (the model run inside the maps, the writes inside dating, ...).
STAGES = [
    ("discovering the imagery folder", [("sitewatch.catalog", "discover")]),
    ("reading and masking the scenes", [("sitewatch.reader", "read_scene")]),
    ("quicklook PNGs", [("sitewatch.quicklook", "png"), ("sitewatch.quicklook", "rgb8")]),
    ("scene records (valid footprint, band medians)", [("sitewatch.monitor", "scene_record")]),
    ("the model: onnxruntime inference", [("sitewatch.changemodel:ChangeModel", "_run")]),
    ("the model's input: scaling, tiles, kept bands", [("sitewatch.changemodel:ModelDetector", "maps")]),
    ("maps (de)serialisation", [("sitewatch.structures:StructureMaps", n)
                                for n in ("to_bytes", "from_bytes", "stored")]),
    ("GeoPackage writes", [("sitewatch.store:Store", n) for n in
                           ("save_scene", "save_detections", "supersede_detections", "withdraw_detections",
                            "update_security",
                            "upsert_sites", "start_run", "finish_run")]),
    ("dating changes: regions, outlines, ids", [("sitewatch.monitor", "redate_site")]),
]


def sequential(read, refs):  # type: ignore[no-untyped-def]
    """Scenes read one after another on the calling thread, so a CPU timer sees each stage."""
    from sitewatch.errors import SceneError

    for ref in refs:
        try:
            yield ref, read(ref)
        except SceneError as exc:
            yield ref, exc


def breakdown(model_path: Path, imagery: Path, sites: Path, work: Path,
              db: Path | None = None) -> tuple[float, dict[str, float]]:
    """One more monitor run with each stage's CPU time (process time, so onnxruntime's and the reader's
    own threads count) taken around its calls; scenes are read, and their evidence made, one after another for this run, so
    that no read overlaps another stage. Returns the run's CPU time and stage -> seconds. ``db``: run
    into this GeoPackage as it is (else into a new one)."""
    import importlib

    import sitewatch.monitor as mon
    from sitewatch.monitor import MonitorParams, run

    spent: dict[str, float] = {name: 0.0 for name, _ in STAGES}
    stack: list[list[float]] = []  # per open call: [time in callees]
    patched: list[tuple[object, str, object]] = []

    def timed(stage: str, fn):  # type: ignore[no-untyped-def]
        def wrapper(*a, **k):  # type: ignore[no-untyped-def]
            stack.append([0.0])
            t0 = time.process_time()
            try:
                return fn(*a, **k)
            finally:
                took = time.process_time() - t0
                inner = stack.pop()[0]
                spent[stage] += took - inner
                if stack:
                    stack[-1][0] += took
        return wrapper

    for stage, targets in STAGES:
        for where, attr in targets:
            mod, _, cls = where.partition(":")
            owner = getattr(importlib.import_module(mod), cls) if cls else importlib.import_module(mod)
            if attr not in owner.__dict__:  # (an older sitewatch, measured for comparison)
                continue
            orig = owner.__dict__[attr]
            if isinstance(orig, classmethod):
                new = classmethod(timed(stage, orig.__func__))
            else:
                new = timed(stage, orig)
            patched.append((owner, attr, orig))
            setattr(owner, attr, new)
    patched.append((mon, "_read_ahead", mon._read_ahead))
    mon._read_ahead = sequential
    try:  # a scene's evidence made on the run's thread too (else a stage's CPU timer counts the lane's)
        import sitewatch.sceneflow as flow

        patched.append((flow, "beside", flow.beside))
        flow.beside = lambda: False
    except ImportError:  # (an older sitewatch: no evidence lane)
        pass
    if db is None:
        db = work / f"{imagery.name}-breakdown-{model_path.stem}.gpkg"
        db.unlink(missing_ok=True)
    try:
        c0 = time.process_time()
        run(MonitorParams(sites=str(sites), imagery=str(imagery), db=str(db), change_model=str(model_path),
                          model_only=True))
        total = time.process_time() - c0
    finally:
        for owner, attr, orig in reversed(patched):
            setattr(owner, attr, orig)
    return total, spent


REST = "the rest (sites, run record, store reads, Python glue)"
INFERENCE = "the model: onnxruntime inference"


def profile(model_path: Path, imagery: Path, sites: Path, work: Path, top: int = 45) -> None:
    """cProfile one model-only monitor run (scenes read in the same thread as everything else, so
    that the profile sees the reads) and print its top calls by own time and by cumulative time."""
    import cProfile
    import pstats

    import sitewatch.monitor as mon
    from sitewatch.monitor import MonitorParams, run

    db = work / "levir-profile.gpkg"
    params = MonitorParams(sites=str(sites), imagery=str(imagery), db=str(db), change_model=str(model_path),
                           model_only=True)
    run(dataclasses.replace(params, db=str(work / "levir-profile-warm.gpkg")))  # imports, caches
    db.unlink(missing_ok=True)
    orig, mon._read_ahead = mon._read_ahead, sequential
    os.environ["SITEWATCH_EVIDENCE_THREAD"] = "0"  # the evidence on the profiled thread too
    prof = cProfile.Profile(time.process_time)  # CPU, all threads: waits on the disk do not count
    try:
        c0 = time.process_time()
        prof.runcall(run, params)
        print(f"monitor run, CPU {time.process_time() - c0:.3f} s (under the profiler)")
    finally:
        mon._read_ahead = orig
    for key in ("tottime", "cumulative"):
        pstats.Stats(prof).sort_stats(key).print_stats(top)
