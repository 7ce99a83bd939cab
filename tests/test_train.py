import copy
import math

import pytest
import torch

from sslgeo_lib.config import RunConfig
from sslgeo_lib.training import loop as train_mod
from sslgeo_lib.training.loop import autocast_dtype, lr_at, train

TINY = dict(n_train=256, encoder_width=4, projector_width=16, projector_out=8, epochs=2, batch_size=64,
            monitor_every=1, strength=1.0)


def _weights(result):
    return {k: v.clone() for k, v in result.model.state_dict().items()}


def test_same_seed_same_weights_other_seed_other_weights(cifar, tmp_path):
    a = train(RunConfig(**TINY), tmp_path / "a", progress=False)
    b = train(RunConfig(**TINY), tmp_path / "b", progress=False)
    c = train(RunConfig(**TINY, seed=1), tmp_path / "c", progress=False)
    wa, wb, wc = _weights(a), _weights(b), _weights(c)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    assert a.metrics["loss"] == b.metrics["loss"] and len(a.metrics["loss"]) == 2


def test_resume_after_interruption_gives_the_same_weights(cifar, tmp_path):
    straight = train(RunConfig(**TINY), tmp_path / "straight", progress=False)
    first = train(RunConfig(**TINY), tmp_path / "resumed", progress=False, max_epochs=1)
    assert len(first.metrics["epoch"]) == 1 and (tmp_path / "resumed" / "checkpoint.pt").is_file()
    resumed = train(RunConfig(**TINY), tmp_path / "resumed", progress=False)
    ws, wr = _weights(straight), _weights(resumed)
    assert all(torch.equal(ws[k], wr[k]) for k in ws)
    assert resumed.metrics["loss"] == straight.metrics["loss"]


def test_training_lowers_the_loss(cifar, tmp_path):
    result = train(RunConfig(**{**TINY, "epochs": 4, "strength": 0.5}), tmp_path, progress=False)
    loss = result.metrics["loss"]
    assert loss[-1] < loss[0]
    assert result.dtype in (torch.bfloat16, None) and result.metrics["images_per_s"] > 0


def test_fp32_precision_is_plain_float32(cifar, tmp_path):
    result = train(RunConfig(**{**TINY, "precision": "fp32", "epochs": 1}), tmp_path, progress=False)
    assert result.dtype is None and result.channels_last is False


def test_precision_detection(monkeypatch):
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu, "fp32") is None
    assert autocast_dtype(cpu, "bf16") is torch.bfloat16
    monkeypatch.setattr(train_mod, "cpu_has_bf16", lambda: False)
    assert autocast_dtype(cpu, "auto") is None
    monkeypatch.setattr(train_mod, "cpu_has_bf16", lambda: True)
    assert autocast_dtype(cpu, "auto") is torch.bfloat16


def test_learning_rate_schedule():
    cfg = RunConfig(lr=0.1, batch_size=512)
    assert lr_at(cfg, 0, 100) == pytest.approx(0.2)  # linear scaling: 0.1 * 512 / 256
    assert lr_at(cfg, 50, 100) == pytest.approx(0.1)
    assert lr_at(cfg, 100, 100) == pytest.approx(0.0)


def test_learning_rate_warms_up_linearly_then_decays_by_cosine():
    cfg = RunConfig(lr=0.1, batch_size=256, epochs=10, warmup_epochs=2)  # 100 steps: 20 of warm-up
    assert [lr_at(cfg, k, 100) for k in (0, 9, 19)] == pytest.approx([0.005, 0.05, 0.1])
    assert lr_at(cfg, 20, 100) == pytest.approx(0.1) and lr_at(cfg, 60, 100) == pytest.approx(0.05)
    assert lr_at(cfg, 100, 100) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="warmup_epochs=10 must be smaller than epochs=10"):
        RunConfig(epochs=10, warmup_epochs=10)


def test_lars_scales_each_tensors_step_by_its_trust_ratio_and_spares_excluded_groups():
    """One step from a zero momentum buffer, by hand: d = g + wd w; a tensor adapted by LARS moves by
    lr * min(eta |w| / (|g| + wd |w|) / lr, 1) * d; a group with adapt=False moves by lr * d (plain SGD)."""
    from sslgeo_lib.training.loop import LARS

    w, b = torch.tensor([3.0, 4.0], requires_grad=True), torch.tensor([1.0], requires_grad=True)
    w.grad, b.grad = torch.tensor([0.6, 0.8]), torch.tensor([2.0])
    lr, wd, eta = 0.5, 0.1, 0.02
    opt = LARS([{"params": [w], "weight_decay": wd}, {"params": [b], "weight_decay": 0.0, "adapt": False}], lr=lr,
               eta=eta)
    w0, b0 = w.detach().clone(), b.detach().clone()
    opt.step()
    trust = eta * 5.0 / (1.0 + wd * 5.0)  # |w| = 5, |g| = 1
    torch.testing.assert_close(w.detach(), w0 - lr * min(trust / lr, 1.0) * (torch.tensor([0.6, 0.8]) + wd * w0))
    torch.testing.assert_close(b.detach(), b0 - lr * torch.tensor([2.0]))


def test_decay_scope_weights_spares_batchnorm_and_biases():
    from sslgeo_lib.training.loop import new_model, new_optimizer

    cfg = RunConfig(**{**TINY, "decay_scope": "weights", "weight_decay": 0.01})
    model = new_model(cfg)
    decayed, spared = new_optimizer(model, cfg).param_groups
    assert decayed["weight_decay"] == 0.01 and spared["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decayed["params"]) and all(p.ndim == 1 for p in spared["params"])
    assert len(decayed["params"]) + len(spared["params"]) == len(list(model.parameters()))
    (everything,) = new_optimizer(model, cfg.replace(decay_scope="all")).param_groups
    assert everything["weight_decay"] == 0.01 and len(everything["params"]) == len(list(model.parameters()))
    assert isinstance(new_optimizer(model, cfg.replace(optimizer="lars")), train_mod.LARS)


def test_per_view_batchnorm_forwards_each_view_alone(cifar):
    """train_step's loss with view_batchnorm="per_view", recomputed by hand from the same views forwarded one at a
    time (each with its own batch statistics), and different from forwarding both views in one batch."""
    from sslgeo_lib.training import losses
    from sslgeo_lib.training.augment import augment
    from sslgeo_lib.training.loop import new_model, train_step

    cfg = RunConfig(**{**TINY, "precision": "fp32", "view_batchnorm": "per_view"})
    x = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(5)
    v1, _ = augment(x.float() / 255, cfg.strength, gen)
    v2, _ = augment(x.float() / 255, cfg.strength, gen)
    model = new_model(cfg).train()
    with torch.no_grad():
        ref = copy.deepcopy(model)
        alone = losses.nt_xent(ref(v1)[1], ref(v2)[1], cfg.temperature).item()
        together = copy.deepcopy(model)(torch.cat([v1, v2]))[1]
        shared = losses.nt_xent(together[:32], together[32:], cfg.temperature).item()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    loss = train_step(model, opt, x, cfg, torch.Generator().manual_seed(5), None, False).item()
    assert loss == pytest.approx(alone, rel=1e-5) and abs(alone - shared) > 1e-4
    model = new_model(cfg).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    loss = train_step(model, opt, x, cfg.replace(view_batchnorm="shared"), torch.Generator().manual_seed(5), None,
                      False).item()
    assert loss == pytest.approx(shared, rel=1e-5)


def test_weights_do_not_depend_on_the_callers_thread_count(cifar, tmp_path):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = train(RunConfig(**TINY), tmp_path / "one", progress=False, device="cpu")
        assert torch.get_num_threads() == 1  # restored after training
        torch.set_num_threads(3)
        three = train(RunConfig(**TINY), tmp_path / "three", progress=False, device="cpu")
    finally:
        torch.set_num_threads(before)
    assert one.threads == three.threads == train_mod.TRAINING_THREADS
    w1, w3 = _weights(one), _weights(three)
    assert all(torch.equal(w1[k], w3[k]) for k in w1)


@pytest.mark.parametrize("method", ["vicreg", "barlow_twins", "byol"])
def test_every_method_lowers_its_loss_and_resumes_to_the_same_weights(cifar, tmp_path, method):
    cfg = RunConfig(**{**TINY, "epochs": 3, "strength": 0.5, "method": method})
    straight = train(cfg, tmp_path / "straight", progress=False)
    loss = straight.metrics["loss"]
    assert all(map(math.isfinite, loss)) and loss[-1] < loss[0], loss
    train(cfg, tmp_path / "resumed", progress=False, max_epochs=1)
    resumed = train(cfg, tmp_path / "resumed", progress=False)  # BYOL: the target network is in the checkpoint
    ws, wr = _weights(straight), _weights(resumed)
    assert all(torch.equal(ws[k], wr[k]) for k in ws) and resumed.metrics["loss"] == loss
    simclr = _weights(train(cfg.replace(method="simclr"), tmp_path / "simclr", progress=False))
    assert any("predictor" in k for k in ws) == (method == "byol")
    encoder = [k for k in simclr if k.startswith("encoder")]
    assert not all(torch.equal(ws[k], simclr[k]) for k in encoder)  # the same run but the objective: other weights


def test_each_method_trains_on_its_own_loss():
    from sslgeo_lib.training import losses
    from sslgeo_lib.training.loop import pair_loss

    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(16, 8, generator=g), torch.randn(16, 8, generator=g)
    cfg = RunConfig(**TINY)
    assert pair_loss(cfg, z1, z2).item() == pytest.approx(losses.nt_xent(z1, z2, cfg.temperature).item())
    assert pair_loss(cfg.replace(method="vicreg"), z1, z2).item() == pytest.approx(losses.vicreg(z1, z2).item())
    assert (pair_loss(cfg.replace(method="barlow_twins"), z1, z2).item()
            == pytest.approx(losses.barlow_twins(z1, z2).item()))
    with pytest.raises(ValueError, match="no pair loss"):
        pair_loss(cfg.replace(method="byol"), z1, z2)


def test_a_byol_step_regresses_each_views_prediction_on_the_other_views_target(cifar):
    """train_step's BYOL loss, recomputed by hand from the same views: q(z(v1)) against t(v2) and q(z(v2))
    against t(v1), not each view against itself."""
    from sslgeo_lib.training import losses
    from sslgeo_lib.training.augment import augment
    from sslgeo_lib.training.loop import new_model, new_target, train_step

    cfg = RunConfig(**{**TINY, "method": "byol", "precision": "fp32"})
    model, x = new_model(cfg).train(), torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8)
    target = new_target(model)
    with torch.no_grad():  # perturb the target so that crossing the views matters
        for p in target.parameters():
            p.add_(0.1 * torch.randn_like(p))
    xf = x.float() / 255
    gen = torch.Generator().manual_seed(5)
    v1, _ = augment(xf, cfg.strength, gen)
    v2, _ = augment(xf, cfg.strength, gen)
    views = torch.cat([v1, v2])
    with torch.no_grad():
        ref_model, ref_target = copy.deepcopy(model), copy.deepcopy(target)
        p = ref_model.predictor(ref_model(views)[1])
        t = ref_target(views)[1]
    crossed = (losses.byol(p[:32], t[32:]) + losses.byol(p[32:], t[:32])).item()
    same = (losses.byol(p[:32], t[:32]) + losses.byol(p[32:], t[32:])).item()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    loss = train_step(model, opt, x, cfg, torch.Generator().manual_seed(5), None, False, target, 0.99).item()
    assert loss == pytest.approx(crossed, rel=1e-5) and abs(crossed - same) > 1e-3


def test_an_unreadable_byol_checkpoint_restarts_from_a_clean_state(cifar, tmp_path):
    """A checkpoint without the target network: warned about, and training restarts from the initial weights,
    optimiser and target (nothing half-loaded), so the run equals one trained from scratch."""
    cfg = RunConfig(**{**TINY, "epochs": 1, "method": "byol"})
    clean = train(cfg, tmp_path / "clean", progress=False)
    bad = tmp_path / "bad"
    bad.mkdir()
    other = train(cfg.replace(seed=3), tmp_path / "other", progress=False)
    torch.save({"model": other.model.state_dict(), "opt": {"state": {}, "param_groups": []}, "epoch": 1,
                "metrics": {}}, bad / "checkpoint.pt")
    with pytest.warns(UserWarning, match="unreadable"):
        again = train(cfg, bad, progress=False)
    wc, wa = _weights(clean), _weights(again)
    assert all(torch.equal(wc[k], wa[k]) for k in wc)


def test_byol_target_is_a_moving_average_of_the_online_network(cifar):
    from sslgeo_lib.training.loop import ema_decay, ema_update, new_model, new_target

    cfg = RunConfig(**{**TINY, "method": "byol", "ema": 0.99})
    assert ema_decay(cfg, 0, 100) == pytest.approx(0.99) and ema_decay(cfg, 100, 100) == pytest.approx(1.0)
    assert ema_decay(cfg, 50, 100) == pytest.approx(0.995)
    model = new_model(cfg)
    target = new_target(model)
    assert target.predictor is None and not any(p.requires_grad for p in target.parameters())
    before = {k: v.clone() for k, v in target.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema_update(target, model, 0.9)
    online = dict(model.named_parameters())
    for k, v in target.named_parameters():
        torch.testing.assert_close(v, 0.9 * before[k] + 0.1 * online[k])
