"""Every book notebook, executed by papermill with smoke parameters; assertions on what it glues."""
import re
from pathlib import Path

import numpy as np
import papermill
import pytest

from sslgeo_lib.pages import PAGES
from sslgeo_lib.report import read_glue

pytestmark = pytest.mark.slow  # builds the book / runs notebooks: the full tier (make test-all)

BOOK = Path(__file__).resolve().parents[1] / "book"
NOTEBOOKS = sorted(p.name for p in BOOK.glob("*.ipynb"))
VERDICT = re.compile(r"^(supported|contradicted|negligible|inconclusive|mixed|not tested)\b[\w\s.,;:=<>\[\]()+-]*$")
CI = re.compile(r"^(-?\d+\.\d+ (\[-?\d+\.\d+, -?\d+\.\d+\]|\(no CI: \d+ seed\))|no estimate)$")


@pytest.fixture(scope="module")
def executed(cifar, book_glue, tmp_path_factory):
    """A notebook's glued values: with the smoke preset's own parameters, from the one book build the book,
    browser and notebook tests share (`book_glue`); with other parameters, executed by papermill here."""
    out = {}
    folder = tmp_path_factory.mktemp("notebooks")

    def run(name, **params):
        if not params:
            return book_glue[name]
        key = (name, tuple(sorted(params.items())))
        if key not in out:  # each notebook and parameters executed once per module
            path = folder / f"{len(out)}-{name}"
            papermill.execute_notebook(str(BOOK / name), str(path), parameters={"preset": "smoke", **params},
                                       cwd=str(BOOK), progress_bar=False, kernel_name="python3")
            out[key] = read_glue(path)
        return out[key]

    return run


def test_every_notebook_has_a_documented_parameters_cell():
    import nbformat

    for name in NOTEBOOKS:
        cells = nbformat.read(BOOK / name, as_version=4).cells
        cell = next(c for c in cells if "parameters" in c.metadata.get("tags", []))
        defined = re.findall(r"^(\w+):", cell.source, flags=re.M)
        params = papermill.inspect_notebook(str(BOOK / name))
        assert sorted(params) == sorted(defined), f"{name}: papermill cannot read every parameter"
        assert params["preset"]["default"] == '"auto"', name
        for p in params.values():
            assert p["help"], f"{name}: parameter {p['name']} has no comment"
            assert p["inferred_type_name"] != "None", f"{name}: parameter {p['name']} has no type"


def test_c2_glues_a_verdict_for_each_reading(executed):
    glued = executed("c2_invariance.ipynb")
    for key in ("c2", "c2_fixed", "c2_trend"):
        assert VERDICT.match(glued[f"{key}_verdict"]), glued[f"{key}_verdict"]
        assert CI.match(glued[f"{key}_ci"]), glued[f"{key}_ci"]
    # smoke runs one seed: the learned gate has no interval, so the claim is not tested, and says why
    assert glued["c2_verdict"].startswith("not tested at 1 (the encoder did not learn: gain ")
    assert glued["c2_verdict"].endswith("(no interval: 1 seed)) (fewer than 2 seeds ran)"), glued["c2_verdict"]
    assert glued["c2_preset"] == "smoke" and glued["c2_n_runs"] == "2" and glued["c2_rule"] == "v3"
    assert glued["c2_reading"].startswith("The trained projector's invariance beyond its initialisation's")


def test_c2_accepts_papermill_text_parameters(executed):
    glued = executed("c2_invariance.ipynb", strengths="[0, 0.5]", seeds="[0, 1]", n_test="200", n_views="3")
    assert glued["c2_n_runs"] == "4" and glued["c2_n_views"] == "3" and glued["c2_seeds"] == "2"
    assert "over 2 seeds" in glued["c2_covers"]
    assert not glued["c2_verdict"].endswith("seeds ran)")
    assert re.search(r"\[", glued["c2_ci"])  # two seeds: a real interval


def test_zero_means_all_test_images(executed):
    glued = executed("c3_dimension.ipynb", n_test="0", n_id="300")
    assert glued["c3_n_id"] == "300" and glued["c3_verdict"].startswith("not tested")


def test_methods_describes_the_runs(executed):
    glued = executed("methods.ipynb")
    assert glued["m_preset"] == "smoke" and glued["m_seeds"] == "1" and glued["m_n_test"] == "500"
    for key in ("m_fpr_per_strength", "m_fpr_claim", "m_fpr_trend"):  # the rule's calibration, computed
        assert 2 <= float(glued[key].rstrip("%")) <= 8, (key, glued[key])
    assert 0 < float(glued["m_untrained_knn"]) < 1 and 0 < float(glued["m_untrained_linear"]) < 1
    assert float(glued["m_images_per_s"].replace(",", "")) > 0


# each claim page's readings the tests require (its prefix first; the registry, sslgeo_lib/pages.py, names the page)
READINGS = {
    "C1": ["", "trend", "step", "raw", "knn", "knn_trend"],
    "C3": ["", "trend", "raw", "top_m", "jacobian"],
    "C4": ["", "local_d", "no_radial", "r_d", "r_2d", "rho", "rho_raw", "same_class", "rho_trend", "vs_global",
           "vs_random", "rho_random", "rho_normalized"],
    "C5": ["", "trend", "raw", "unit"],
    "C6": ["", "rank", "transfer"],
    "B4": ["", *(f"{s}_{p}" for s in ("C1_knn", "C2", "C3") for p in (25, 50, 100))],
    "B1": ["", "C1", "C2", "C3", "C4", "C5"],
    "B2": ["", "C1", "C2", "C3", "C4", "C5"],
    "C7": ["", "data_only", "no_collapse", "toy_rho", "toy_locality", "toy_alpha"],
}
CLAIM_KEYS = {PAGES[c].file: [PAGES[c].prefix + (f"_{r}" if r else "") for r in rs] for c, rs in READINGS.items()}


@pytest.mark.parametrize("name", sorted(CLAIM_KEYS))
def test_claim_notebooks_glue_a_verdict_for_every_reading(executed, name):
    glued = executed(name)
    for key in CLAIM_KEYS[name]:
        assert VERDICT.match(glued[f"{key}_verdict"]), (key, glued[f"{key}_verdict"])
        assert CI.match(glued[f"{key}_ci"]), (key, glued[f"{key}_ci"])
        assert glued[f"{key}_statistic"]
    prefix = CLAIM_KEYS[name][0]
    assert glued[f"{prefix}_reading"] and glued[f"{prefix}_rule"] == "v3"
    if name != "c7_theory.ipynb":  # the smoke sweep runs one seed: no interval, so the learned gate cannot pass
        assert glued[f"{prefix}_verdict"].startswith("not tested"), glued[f"{prefix}_verdict"]
        assert "no interval: 1 seed" in glued[f"{prefix}_verdict"] + glued.get(f"{prefix}_gate", "")


def test_c7_fits_the_theory_even_on_one_seed(executed):
    glued = executed("c7_theory.ipynb")
    assert float(glued["c7_ci"].split()[0]) > 0  # the closed form beats the data-only alternative


def test_every_parameter_of_every_notebook_is_accepted_by_its_validator():
    """Each notebook's parameters go through one function (make_preset, or theory_settings for C7): a name it
    does not accept would be a parameter that does nothing."""
    from sslgeo_lib.presets import make_preset, parameter_names, theory_settings

    for name in NOTEBOOKS:
        params = papermill.inspect_notebook(str(BOOK / name))
        names = set(params) - {"preset", "n_images"}
        if name == "c7_theory.ipynb":
            theory_settings("smoke", **{k: None for k in names})
        else:
            assert names <= set(parameter_names()), (name, names - set(parameter_names()))
            defaults = {k: p["default"] for k, p in params.items() if k in names and p["default"] != "None"}
            make_preset("smoke", **defaults)


def test_the_summary_shows_every_claim_whose_runs_exist(executed):
    """The core figure never shows C6 (the core edition has no C6 page); the full one shows it exactly when its
    runs are in the store (whether an earlier test trained them decides which, so both are checked against it)."""
    from sslgeo_lib.presets import make_preset
    from sslgeo_lib.store import check_entry, entry_path

    glued = executed("summary.ipynb")
    assert glued["summary_core_claims"] == "C1, C2, C3, C4, C5, C7"
    has_c6 = all(check_entry(entry_path(c), c) is None for c in make_preset("smoke").shape_configs())
    assert glued["summary_claims"] == ("C1, C2, C3, C4, C5, C6, C7" if has_c6 else "C1, C2, C3, C4, C5, C7")


def test_every_notebook_is_tested():
    assert set(NOTEBOOKS) == set(CLAIM_KEYS) | {"c2_invariance.ipynb", "methods.ipynb", "summary.ipynb"}


def test_the_summary_equals_the_pages(executed):
    """In one build, every claim the summary page reads has the estimate, interval and verdict its own page glued:
    both compute through `pages.readings`."""
    summary = executed("summary.ipynb")
    shown = summary["summary_claims"].split(", ")
    assert {"C1", "C2", "C3", "C4", "C5", "C7"} <= set(shown) <= set(PAGES)
    for claim in shown:
        glued = executed(PAGES[claim].file)
        prefix = PAGES[claim].prefix
        assert summary[f"summary_{claim}_verdict"] == f"{glued[prefix + '_ci']}: {glued[prefix + '_verdict']}", claim


def test_b1_and_b2_read_every_group_beside_the_reference(executed):
    b1, b2 = executed("b1_objectives.ipynb"), executed("b2_augmentations.ipynb")
    assert b1["b1_groups"] == "vicreg, barlow_twins, byol" and b1["b1_n_runs"] == "4"  # + the SimCLR reference
    assert b2["b2_groups"] == "crop, color, flip" and b2["b2_n_runs"] == "4"           # + the full policy
    assert b1["b1_verdict"].startswith("not tested for vicreg, barlow_twins, byol"), b1["b1_verdict"]
    one = executed("b1_objectives.ipynb", methods="['byol']")
    assert one["b1_groups"] == "byol" and one["b1_n_runs"] == "2"


def test_a_claim_notebook_runs_on_an_image_folder_it_is_given(executed, tmp_path):
    """Any ImageFolder tree, with its own classes and image sizes: three classes of 100 training and 20 test
    images of 40 x 48 pixels (resized to 32 x 32), coloured by class."""
    from PIL import Image

    from sslgeo_lib.store import list_runs

    rng = np.random.default_rng(0)
    for split, n in (("train", 100), ("test", 20)):
        for k, name in enumerate(("red", "green", "blue")):
            folder = tmp_path / "tree" / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 80, (48, 40, 3), dtype=np.uint8)
                img[..., k] += 150
                Image.fromarray(img).save(folder / f"{i}.png")
    tree = str(tmp_path / "tree")
    glued = executed("c2_invariance.ipynb", dataset=tree, n_train=0, n_test=60, n_anchor=30, epochs=2)
    assert VERDICT.match(glued["c2_verdict"]) and glued["c2_n_runs"] == "2"
    assert sum(r.get("dataset") == tree for r in list_runs() if r["kind"] == "run") == 2


def test_the_rerun_box_gives_the_command_that_reproduces_the_page(executed, tmp_path):
    """The page's re-run command, run as it is printed (papermill's command line, from the repository root, the
    output written into a temporary folder), gives the same results as the page."""
    import shlex
    import subprocess
    import sys

    # the parameters of test_c2_accepts_papermill_text_parameters: that execution is reused
    first = executed("c2_invariance.ipynb", strengths="[0, 0.5]", seeds="[0, 1]", n_test="200", n_views="3")
    words = shlex.split(first["c2_rerun_command"].replace("\\\n", " "))
    assert words[:3] == ["papermill", "book/c2_invariance.ipynb", "c2_invariance.out.ipynb"]
    params = dict(zip(words[4::3], words[5::3]))
    assert set(words[3::3]) == {"-p"} and params["strengths"] == "[0.0, 0.5]" and params["n_views"] == "3"
    assert params["seeds"] == "[0, 1]" and params["n_test"] == "200"
    assert params["preset"] == "smoke"
    assert set(params) == set(papermill.inspect_notebook(str(BOOK / "c2_invariance.ipynb")))
    out = tmp_path / words[2]
    command = [str(Path(sys.executable).with_name("papermill")), words[1], str(out), *words[3:], "--no-progress-bar"]
    done = subprocess.run(command, cwd=BOOK.parent, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    again = read_glue(out)
    for key in ("c2_ci", "c2_verdict", "c2_n_runs", "c2_fixed_ci"):
        assert again[key] == first[key], key
