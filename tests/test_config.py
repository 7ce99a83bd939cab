import dataclasses

import pytest

from sslgeo_lib.config import RunConfig
from sslgeo_lib.presets import PRESETS, BeyondGrid, make_preset, resolve_preset_name


def test_defaults_are_valid_and_ints_become_floats():
    cfg = RunConfig(strength=1, lr=1)
    assert cfg.strength == 1.0 and isinstance(cfg.strength, float)


@pytest.mark.parametrize("changes,error,message", [
    ({"strength": -0.5}, ValueError, "strength must be a finite number >= 0"),
    ({"dataset": "mnist"}, ValueError, r"dataset 'mnist' is neither a known dataset \(cifar10, cifar100, stl10\)"),
    ({"encoder": "vit"}, ValueError, "encoder='vit' is unknown; accepted: small_cnn, small_resnet, resnet18"),
    ({"epochs": "20"}, TypeError, "epochs must be int, got '20' \\(str\\)"),
    ({"epochs": 2.5}, TypeError, "epochs must be int"),
    ({"seed": True}, TypeError, "seed must be int"),
    ({"batch_size": 0}, ValueError, "batch_size must be > 0"),
    ({"n_train": 100, "batch_size": 256}, ValueError, "at least two batches"),
    ({"precision": "fp16"}, ValueError, "precision='fp16' is unknown; accepted: auto, bf16, fp32"),
])
def test_bad_fields_fail_with_clear_messages(changes, error, message):
    with pytest.raises(error, match=message):
        RunConfig(**changes)


def test_replace_rejects_unknown_fields():
    with pytest.raises(KeyError, match="unknown RunConfig field"):
        RunConfig().replace(epoch=3)


def test_presets_expand_to_sweeps():
    cpu = PRESETS["cpu"]
    assert cpu.strengths == (0.0, 0.25, 0.5, 1.0) and cpu.seeds == (0, 1, 2, 3) and cpu.grid_seeds == (0, 1, 2)
    configs = cpu.configs()
    assert len(configs) == 16 and {c.strength for c in configs} == set(cpu.strengths)
    assert {c.seed for c in cpu.shape_configs() + cpu.objective_configs() + cpu.family_configs()} == {0, 1, 2}
    assert set(cpu.reference_configs()) <= set(configs)  # B1's and B2's reference: main-sweep runs, trained once
    assert make_preset("cpu", seeds=[5]).grid_seeds == (5,)
    assert 0.0 in PRESETS["gpu-lite"].strengths  # the control the paired rows need
    assert PRESETS["gpu"].base.encoder == "resnet18" and PRESETS["gpu"].base.n_train == 0


def test_auto_preset(monkeypatch):
    monkeypatch.setenv("SSLGEO_PRESET", "smoke")
    assert resolve_preset_name("auto") == "smoke"
    monkeypatch.delenv("SSLGEO_PRESET")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert resolve_preset_name("auto") == "cpu"
    with pytest.raises(ValueError, match="unknown preset 'fast'; accepted: auto, smoke, cpu, gpu-lite, gpu"):
        resolve_preset_name("fast")


def test_papermill_strings_are_parsed():
    p = make_preset("smoke", strengths="[0, 1.0]", seeds="[0, 1]", epochs="2", n_test="100")
    assert p.strengths == (0.0, 1.0) and p.seeds == (0, 1) and p.base.epochs == 2 and p.eval.n_test == 100
    assert make_preset("smoke", strengths=[0.5]).strengths == (0.5,)


@pytest.mark.parametrize("kwargs,error,message", [
    ({"strengths": "[0, -1]"}, ValueError, "strength must be a finite number >= 0"),
    ({"strengths": "0.5"}, TypeError, "strengths must be list, got 0.5"),
    ({"strengths": "[0, 'a']"}, TypeError, "strengths\\[1\\] must be float"),
    ({"seeds": "[0.5]"}, TypeError, "seeds\\[0\\] must be int"),
    ({"epochs": "two"}, ValueError, "epochs='two' is not a Python literal of type int"),
    ({"epoch": 3}, KeyError, "unknown parameter 'epoch'"),
    ({"seeds": "[]"}, ValueError, "at least one strength and one seed"),
])
def test_bad_notebook_parameters(kwargs, error, message):
    with pytest.raises(error, match=message):
        make_preset("smoke", **kwargs)


def test_notebook_parameters_are_the_plain_values_of_the_namespace():
    import numpy as np

    from sslgeo_lib.presets import notebook_parameters

    injected = '# Parameters\npreset = "smoke"\nstrenghts = "[0.5]"\n'
    namespace = {"__annotations__": {"preset": "str", "strengths": "list", "seeds": "list"},
                 "preset": "smoke", "strengths": None, "seeds": [0, 1], "strenghts": "[0.5]", "np": np, "len": len,
                 "_i1": "a cell", "In": ["", "preset: str = 'auto'", injected], "Out": {}, "params": {"a": 1},
                 "verdicts": [1, 2], "grid": (1.0, 2.0)}
    # declared and injected names only: results of later cells (params, verdicts, grid) are never parameters
    assert notebook_parameters(namespace) == {"preset": "smoke", "strengths": None, "seeds": [0, 1],
                                              "strenghts": "[0.5]"}


def test_an_unknown_parameter_is_named_with_a_suggestion():
    import pytest

    from sslgeo_lib.presets import UnknownParameter, make_preset, theory_settings

    with pytest.raises(UnknownParameter, match="unknown parameter 'strenghts'; accepted: preset, strengths, .*"
                                               "did you mean 'strengths'"):
        make_preset("smoke", strenghts="[0.5]")
    with pytest.raises(UnknownParameter, match="unknown parameter 'step'; accepted: .*did you mean 'steps'"):
        theory_settings("smoke", step=3)


def test_b1_and_b2_grids_expand_and_check_their_parameters():
    p = make_preset("cpu")
    objectives, families = p.objective_configs(), p.family_configs()
    assert len(objectives) == 3 * len(p.beyond.strengths) * len(p.grid_seeds)
    assert {c.method for c in objectives} == {"vicreg", "barlow_twins", "byol"}
    assert {c.augment_family for c in families} == {"crop", "color", "flip"}
    assert all(c.method == "simclr" for c in families) and all(c.augment_family == "all" for c in objectives)
    assert set(p.reference_configs()) <= set(p.configs())  # the reference is the main sweep's, trained once
    every = p.all_configs()
    assert len(every) == len(set(every)) == len(set(p.configs() + p.shape_configs() + objectives + families))
    q = make_preset("cpu", methods="['byol']", families=["flip"], beyond_strengths="[0.5]")
    assert [c.method for c in q.objective_configs()] == ["byol"] * 3 and q.beyond.strengths == (0.5,)
    for bad in (["simsiam"], ["simclr", "byol"], ["byol", "byol"]):  # the reference is always there, once
        with pytest.raises(ValueError, match="methods must be a non-empty list of distinct names from vicreg, "
                                             "barlow_twins, byol"):
            make_preset("cpu", methods=bad)
    for bad in (["colour"], ["all"], ["crop", "crop"]):
        with pytest.raises(ValueError, match="families must be a non-empty list of distinct names from crop, "
                                             "color, flip"):
            make_preset("cpu", families=bad)
    for bad in ([0.0], [1.0, 1.0]):
        with pytest.raises(ValueError, match="beyond_strengths must be a non-empty list of distinct s > 0"):
            make_preset("cpu", beyond_strengths=bad)
    # a training override of the method or family does not change what the pages compare against
    r = make_preset("smoke", method="vicreg", augment_family="crop")
    assert {(c.method, c.augment_family) for c in r.reference_configs()} == {("simclr", "all")}
    assert ({c.augment_family for c in r.objective_configs()} == {"all"}
            and {c.method for c in r.family_configs()} == {"simclr"})


def test_an_objectives_recipe_reaches_its_runs_and_its_label():
    grid = BeyondGrid(recipes=(("byol", (("lr", 0.2), ("view_batchnorm", "per_view"))),))
    p = dataclasses.replace(make_preset("cpu"), beyond=grid)
    by_method = {c.method: c for c in p.objective_configs()}
    assert (by_method["byol"].lr, by_method["byol"].view_batchnorm) == (0.2, "per_view")
    assert (by_method["vicreg"].lr, by_method["vicreg"].view_batchnorm) == (p.base.lr, "shared")  # no recipe: base
    assert grid.label(by_method["byol"]) == "byol lr 0.2, view_batchnorm per_view"
    assert grid.label(by_method["barlow_twins"]) == "barlow_twins lr 0.06"
    with pytest.raises(ValueError, match="BeyondGrid.recipes names 'simsiam'; accepted objectives: simclr, vicreg"):
        BeyondGrid(recipes=(("simsiam", (("lr", 0.1),)),))
    with pytest.raises(ValueError, match="RunConfig.view_batchnorm='each' is unknown; accepted: shared, per_view"):
        BeyondGrid(recipes=(("byol", (("view_batchnorm", "each"),)),))
    with pytest.raises(KeyError, match=r"unknown RunConfig field\(s\) \['momentum'\]; accepted: "):
        BeyondGrid(recipes=(("byol", (("momentum", 0.5),)),))


def test_an_objectives_schedule_multiplies_the_presets_epochs():
    grid = BeyondGrid(schedules=(("barlow_twins", 2.0),))
    p = dataclasses.replace(make_preset("cpu"), beyond=grid)
    by_method = {c.method: c for c in p.objective_configs()}
    assert by_method["barlow_twins"].epochs == 2 * p.base.epochs and by_method["vicreg"].epochs == p.base.epochs
    assert grid.label(by_method["barlow_twins"]) == f"barlow_twins lr 0.3, optimizer lars, weight_decay 0.0001, " \
                                                    f"decay_scope weights, warmup_epochs 1, epochs {2 * p.base.epochs}"
    q = dataclasses.replace(make_preset("cpu", epochs="3"), beyond=grid)  # relative: a notebook's epochs scale it
    assert {c.method: c.epochs for c in q.objective_configs()} == {"vicreg": 3, "barlow_twins": 6, "byol": 3}
    with pytest.raises(ValueError, match="BeyondGrid.schedules gives byol 0.5 times the epochs; accepted: >= 1"):
        BeyondGrid(schedules=(("byol", 0.5),))
    with pytest.raises(ValueError, match="BeyondGrid.schedules names 'simsiam'; accepted objectives: simclr"):
        BeyondGrid(schedules=(("simsiam", 2.0),))


def test_the_untrained_sweep_is_the_presets_architecture_at_the_null_sizes():
    """The null's sizes are NULL_EVAL's, or the preset's own where smaller; its one epoch is NULL_IMAGES images
    (fewer where the preset trains on fewer) in at least NULL_STEPS steps; nothing else of the architecture moves."""
    from sslgeo_lib.presets import NULL_EVAL, NULL_IMAGES, NULL_LR, NULL_STEPS, null_preset

    cpu, smoke = null_preset(PRESETS["cpu"]), null_preset(PRESETS["smoke"])
    assert cpu.eval == NULL_EVAL and (cpu.base.n_train, cpu.base.batch_size) == (NULL_IMAGES, 128)  # cpu: all larger
    assert smoke.base.n_train == 1000 and smoke.base.batch_size == 1000 // NULL_STEPS == 31
    assert (smoke.eval.n_test, smoke.eval.n_anchor, smoke.eval.n_probe_test) == (500, 40, 500)  # smoke's own
    assert smoke.eval.n_probe_train == 1000  # smoke probes on its runs' own 1,000 training images
    assert (smoke.eval.protocol_bank, smoke.eval.protocol_queries) == (2000, 500)  # the gate's protocol: smoke's
    assert (smoke.eval.n_id, smoke.eval.n_views) == (NULL_EVAL.n_id, 4)  # smoke's n_id 0 means all: not smaller
    gpu = null_preset(PRESETS["gpu"])
    assert gpu.base.batch_size == NULL_IMAGES // NULL_STEPS and gpu.eval == NULL_EVAL  # 512 would be 9 steps
    for null, p in ((cpu, PRESETS["cpu"]), (smoke, PRESETS["smoke"])):
        assert null.base.lr == NULL_LR and null.base.epochs == 1 and len(null.seeds) == 3
        assert (null.base.encoder, null.base.encoder_width, null.base.projector_out) == \
            (p.base.encoder, p.base.encoder_width, p.base.projector_out)
    assert null_preset(PRESETS["cpu"], n_train=1000, batch_size=64).base.batch_size == 64


def test_method_family_and_dataset_fields_are_checked():
    with pytest.raises(ValueError, match="RunConfig.method='simsiam' is unknown; accepted: simclr, vicreg, "
                                         "barlow_twins, byol"):
        RunConfig(method="simsiam")
    with pytest.raises(ValueError, match="augment_family='hue' is unknown; accepted: all, crop, color, flip"):
        RunConfig(augment_family="hue")
    with pytest.raises(ValueError, match="RunConfig.dataset 'imagenet' is neither a known dataset"):
        RunConfig(dataset="imagenet")  # a relative path must exist (a misspelt name is caught here)
    assert RunConfig(dataset="/moved/away").dataset == "/moved/away"  # a stored run's absolute path stays readable
    with pytest.raises(ValueError, match="ema must lie in"):
        RunConfig(ema=1.0)
