"""Generated imagery with known truth, and the arithmetic that scores against it.

Not part of the detector: what it is demonstrated, tested and measured on.

- :mod:`.synth`: a seeded renderer of scenes with planted structures (same seed, same pixels);
- :mod:`.synth_region`: region series for the wide-area scan;
- :mod:`.demo`: the demo's STAC catalog of COGs and its sites (``sitewatch demo``);
- :mod:`.truthcheck`: findings against what a generated series planted;
- :mod:`.scoring`: matching detections to truth, pixel scores, calibration (``benchmarks/``).
"""
