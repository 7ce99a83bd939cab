"""The whole-pipeline null of rule v3: a sweep of untrained networks (learning rate ~0) of the cpu preset's
architecture (D = 256, m = 128), 3 seeds, run through every claim's verdict code (C1-C6, B1), supports nothing."""
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def readings(cifar, tmp_path_factory):
    from sslgeo_lib import monitor
    from sslgeo_lib.presets import PRESETS, null_preset
    from sslgeo_lib.summary import every_reading, readings_frame

    mp = pytest.MonkeyPatch()
    mp.setenv("SSLGEO_RUNS", str(tmp_path_factory.mktemp("null-runs")))
    mp.setattr(monitor, "PROTOCOL_BANK", 2000)  # the learned gate's kNN protocol, smaller for the suite
    mp.setattr(monitor, "PROTOCOL_QUERIES", 500)
    p = null_preset(PRESETS["cpu"], n_train=1000, batch_size=32, methods=("byol",))  # B1's code with one objective
    assert p.base.encoder_width * 8 == 256 and p.base.projector_out == 128 and len(p.seeds) == 3
    try:
        yield readings_frame(every_reading(p, gated=False)), readings_frame(every_reading(p, gated=True))
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
