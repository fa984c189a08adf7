"""The cloud, haze and snow mask on real imagery: clear ground must stay ground.

Every scene in ``../shared/data`` is clear. Before this test a clear LEVIR-CD tile had 92 % of
its ground masked (pale dry grass and a white roof read as cloud) and xBD Joplin tiles up to
50 % (white yards and roofs read as snow without SWIR). The synthetic cloud, shadow and snow
cases stay in test_reader.py, test_detect.py and test_changes.py.
"""

from __future__ import annotations

import pytest

from sitewatch.clouds import detect
from sitewatch.monitor import MIN_VALID_FRACTION

#: A clear scene may lose at most this share of its ground to the mask (the worst real scene,
#: Abu Dhabi's first date, loses 3.5 % to haze over the sea-front and desert).
MAX_MASKED = 0.05


def test_no_clear_real_scene_is_masked(shared_data):
    from real_scenes import scenes

    seen, bad = 0, []
    for name, bands, res in scenes(shared_data):
        masked = float(detect(bands, res_m=res).mean())
        seen += 1
        if 1 - masked < MIN_VALID_FRACTION:
            bad.append(f"{name}: unusable ({masked:.1%} masked)")
        elif masked > MAX_MASKED:
            bad.append(f"{name}: {masked:.1%} of clear ground masked")
    assert seen >= 40, f"only {seen} real scenes found under {shared_data}"
    assert not bad, "\n".join(bad)


def test_rgb_only_white_roof_next_to_its_yard_is_not_cloud(shared_data):
    """LEVIR-CD test_102, after: a 100 m white warehouse roof joined to a pale car park, RGB at 0.5 m."""
    from real_scenes import scenes

    name, bands, res = next(s for s in scenes(shared_data) if s[0] == "levir-cd-samples/B/test_102_0512_0000.png")
    roof = (bands["red"] > 0.85) & (bands["blue"] > 0.85)
    assert roof.sum() * res * res > 2000, "the tile's white roof is not where it was"
    assert not detect(bands, res_m=res)[roof].any()


@pytest.mark.parametrize("gsd", [0.5, 10.0])
def test_a_thick_cloud_is_still_found_at_both_resolutions(gsd):
    """A cloud grows thick towards its middle: found whatever the pixel size (here 200 m across)."""
    import numpy as np

    n = 200 if gsd == 10.0 else 600
    g = np.random.default_rng(1)
    base = 0.15 + 0.03 * g.standard_normal((n, n))
    yy, xx = np.mgrid[:n, :n]
    r_px = 100.0 / gsd
    a = 0.95 * np.exp(-2.5 * ((yy - n / 2) ** 2 + (xx - n / 2) ** 2) / r_px ** 2)
    bands = {k: (base + d) * (1 - a) + 0.8 * a for k, d in (("red", 0.02), ("green", 0.0), ("blue", -0.02))}
    m = detect({k: v.astype("float32") for k, v in bands.items()}, res_m=gsd)
    assert m[a > 0.5].all()
