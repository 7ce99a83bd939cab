"""The whole-pipeline null of rule v3: a sweep of untrained networks (learning rate ~0) of the cpu preset's
architecture (D = 256, m = 128), 3 seeds, run through every claim's verdict code (C1-C6, B1), supports nothing."""
import dataclasses

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def readings(cifar, tmp_path_factory):
    from sslgeo_lib.presets import PRESETS, null_preset
    from sslgeo_lib.summary import every_reading, readings_frame

    mp = pytest.MonkeyPatch()
    mp.setenv("SSLGEO_RUNS", str(tmp_path_factory.mktemp("null-runs")))
    # the cpu preset's architecture; its probes at 500 training and 1,000 test images, 25 anchors (a quarter and
    # a half of the book's null) and the learned gate's kNN protocol at 1,000 bank and 250 query images; B1's code
    # with one objective
    cpu = PRESETS["cpu"]
    cpu = dataclasses.replace(cpu, eval=cpu.eval.replace(n_probe_train=500, n_probe_test=1000, n_anchor=25,
                                                         protocol_bank=1000, protocol_queries=250))
    p = null_preset(cpu, n_train=1000, methods=("byol",))
    assert p.base.encoder_width * 8 == 256 and p.base.projector_out == 128 and len(p.seeds) == 3
    assert p.base.batch_size == 31 and p.eval.n_probe_train == 500 and p.eval.n_test == 500
    assert (p.eval.protocol_bank, p.eval.protocol_queries) == (1000, 250)
    try:
        yield tuple(map(readings_frame, every_reading(p)))
    finally:
        mp.undo()


def test_an_untrained_sweep_supports_no_claim(readings):
    plain, gated = readings
    assert set(plain["claim"]) == {"C1", "C2", "C3", "C4", "C5", "C6", "B1"}
    deciding = plain[plain["deciding"]]
    assert not (deciding["verdict"] == "supported").any(), deciding[deciding["verdict"] == "supported"].to_string()
    assert not (gated["verdict"] == "supported").any(), gated[gated["verdict"] == "supported"].to_string()
    # the encoders did not learn, so the gate leaves every claim untested (a trend over the sweep's one strength
    # s > 0 has no estimate at all, and stays inconclusive)
    trend = gated["reading"].str.endswith("trend")
    assert (gated.loc[gated["deciding"] & ~trend, "verdict"] == "not tested").all(), gated.to_string()
    assert set(gated.loc[trend, "verdict"]) <= {"not tested", "inconclusive"}, gated.to_string()


def test_the_raw_statistics_still_read_the_architecture(readings):
    """What rule v2 decided by: a random projector from 256 to 128 dimensions lowers the effective rank (C3) and
    separates h from z (C1), so the raw rows read "supported" on networks that learned nothing; the suite's null
    could fail, and the learned parts are what keep it from failing."""
    plain, _ = readings
    raw = plain[(plain["reading"] == "raw") & plain["claim"].isin(["C1", "C3"])]
    assert (raw["verdict"] == "supported").any(), raw.to_string()
