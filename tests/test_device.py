"""Device-agnosticism, checked on the CPU: no device is hard-coded anywhere in the library."""
import re
from pathlib import Path

import torch

from sslgeo_lib.training.augment import augment
from sslgeo_lib.training.loop import default_device

LIB = Path(__file__).resolve().parents[1] / "sslgeo_lib"
# The only places allowed to name a device: choosing one, asking what it supports or what it is called, and
# looking a stored run up under the numerics of another kind of device.
ALLOWED = {("training/loop.py", "default_device"), ("training/loop.py", "autocast_dtype"),
           ("provenance.py", "device_name"), ("presets.py", "resolve_preset_name"), ("store.py", "NUMERICS")}


def _functions_naming_cuda():
    found = set()
    for path in LIB.rglob("*.py"):
        current = None
        for line in path.read_text().splitlines():
            m = re.match(r"def (\w+)|(\w+)\s*[:=]", line)  # top-level functions and module-level names
            if m:
                current = m.group(1) or m.group(2)
            if re.search(r"\.cuda\(|[\"']cuda|torch\.cuda\.", line):
                found.add((path.relative_to(LIB).as_posix(), current))
    return found


def test_no_hard_coded_device():
    assert _functions_naming_cuda() <= ALLOWED, _functions_naming_cuda() - ALLOWED


def test_augmentation_stays_on_the_input_device_and_draws_there():
    x = torch.rand(4, 3, 32, 32)
    gen = torch.Generator(device=x.device).manual_seed(0)
    views, params = augment(x, 1.0, gen)
    assert views.device == x.device and all(p.device == x.device for p in params.values())


def test_default_device_follows_cuda_availability(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device().type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_device().type == "cuda"
