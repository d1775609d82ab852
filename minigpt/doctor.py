"""``python -m minigpt doctor``: a pre-flight check of a learner's machine before a workshop.

Each line says ``ok``, ``warn`` or ``fail``, what was found, and what to do about it:

    ok    python       3.12.3
    fail  data names   not found (MINIGPT_DATA_DIR is not set; ...); to fix: python -m minigpt data --download ...
    ok    speed        lesson 07 (shakespeare-char-cpu, 3,500 steps) takes about 6 min here (22,000 tokens/s)
    ok    10-min recipe native bf16 (AVX512-BF16): Muon orthogonalises in bf16; the 10-minute recipe ...

It checks Python and the packages the lessons need (PyTorch, JupyterLab, ipywidgets and its
JupyterLab extension, nbval), the device (CUDA, MPS or CPU, and bf16), both data sets and their
checksums, free disk space, that the runs and data-cache folders can be written, the course's
trained model, and with a few timed training steps how long lesson 07's recipe will take here.
It exits 1 when a check fails; ``--json`` ends with one JSON object for a script that collects a
room's results. Everything but the standard library is imported inside the checks, so a broken
install gets a ``fail`` line, not a traceback (``python -m minigpt.commands.doctor`` works even when
``import torch`` does not).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

OK, WARN, FAIL = "ok", "warn", "fail"
MIN_PYTHON = (3, 10)  # pyproject.toml's requires-python
WIDGET_EXTENSION = "@jupyter-widgets/jupyterlab-manager"
SETUP_FIX = "run `make lab` (or `pip install -e .`) in the course folder"
DISK_FAIL_GB, DISK_WARN_GB = 0.5, 2.0  # the runs of lessons 06-12 and the GPU recipe's checkpoints fit in 2 GB
SLOW_LESSON_07_S = 15 * 60  # longer than this, a workshop has to plan around it
TEN_MINUTE_RECIPE = "shakespeare-char-cpu-10min"  # the CPU speedrun record's preset


@dataclass
class Result:
    """One line of the report."""

    name: str
    status: str  # ok, warn or fail
    detail: str
    fix: str = ""

    def line(self, width: int = 13) -> str:
        fix = f"; to fix: {self.fix}" if self.fix and self.status != OK else ""
        return f"{self.status:<5} {self.name:<{width}} {self.detail}{fix}"


# --------------------------------------------------------------------------- packages

def _version(dist: str) -> str | None:
    """The installed version of distribution ``dist``, or None when it is not installed."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _at_least(version: str, minimum: str) -> bool:
    try:
        from packaging.version import Version

        return Version(version) >= Version(minimum)
    except Exception:  # no packaging, or an odd version string: compare the leading numbers
        def nums(v):
            out = []
            for part in v.split("+")[0].split(".")[:3]:
                digits = "".join(ch for ch in part if ch.isdigit())
                out.append(int(digits or 0))
            return tuple(out)

        return nums(version) >= nums(minimum)


def check_python(minimum: tuple[int, int] = MIN_PYTHON) -> Result:
    v = platform.python_version()
    if tuple(sys.version_info[:2]) < minimum:
        return Result("python", FAIL, f"{v} at {sys.executable}; the course needs {minimum[0]}.{minimum[1]} or newer",
                      "install Python 3.10+ and make the environment again (`make clean && make lab`)")
    return Result("python", OK, f"{v} ({sys.executable})")


def check_package(dist: str, minimum: str, required: bool = True, why: str = "", fix: str = SETUP_FIX) -> Result:
    """``dist`` installed at ``minimum`` or newer: ok; else fail (``required``) or warn."""
    v = _version(dist)
    bad = FAIL if required else WARN
    need = f" ({why})" if why else ""
    if v is None:
        return Result(dist, bad, f"not installed{need}", fix)
    if not _at_least(v, minimum):
        return Result(dist, bad, f"{v} is too old: the course needs {minimum} or newer{need}", fix)
    return Result(dist, OK, v)


def check_torch() -> Result:
    r = check_package("torch", "2.2", fix="install PyTorch 2.2 or newer (`make lab` does; see the README)")
    if r.status != OK:
        return r
    try:
        import torch

        torch.ones(2, 2) @ torch.ones(2, 2)
    except Exception as e:  # installed but broken (a wrong wheel, a missing shared library)
        return Result("torch", FAIL, f"{r.detail} is installed but does not work: {_one_line(e)}",
                      "reinstall it: `pip install --force-reinstall torch` (the CPU build on a laptop)")
    return r


def labextension_dirs() -> list[Path]:
    """The folders JupyterLab loads prebuilt extensions from (``jupyter labextension list`` shows them)."""
    from jupyter_core.paths import jupyter_path

    return [Path(p) for p in jupyter_path("labextensions")]


def disabled_labextensions() -> set[str]:
    """Extensions disabled in any ``labconfig/page_config.json`` (what ``jupyter labextension disable`` writes)."""
    from jupyter_core.paths import jupyter_config_path

    disabled: set[str] = set()
    for folder in jupyter_config_path():
        page = Path(folder) / "labconfig" / "page_config.json"
        try:
            conf = json.loads(page.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        value = conf.get("disabledExtensions", {}) if isinstance(conf, dict) else {}
        if isinstance(value, dict):
            disabled |= {k for k, v in value.items() if v}
        elif isinstance(value, list):
            disabled |= set(map(str, value))
    return disabled


def check_widgets() -> list[Result]:
    """ipywidgets 8 in Python, and its JupyterLab extension installed, matching and enabled."""
    py = check_package("ipywidgets", "8.0", why="sliders in lessons 00, 05, 08, 09")
    if py.status != OK:
        return [py]
    fix_ext = "`pip install --force-reinstall jupyterlab_widgets` in the environment that runs JupyterLab"
    lab = _version("jupyterlab_widgets")
    if lab is None:
        return [py, Result("widgets ext", FAIL, "jupyterlab_widgets is not installed: widgets would show as "
                           "plain text", fix_ext)]
    if _at_least(py.detail, "8.0") and not _at_least(lab, "3.0"):
        return [py, Result("widgets ext", FAIL, f"jupyterlab_widgets {lab} does not match ipywidgets {py.detail} "
                           "('Error displaying widget')", "`pip install -U jupyterlab_widgets ipywidgets`")]
    try:
        found = [d for d in labextension_dirs() if (d / WIDGET_EXTENSION / "package.json").is_file()]
        disabled = WIDGET_EXTENSION in disabled_labextensions()
    except ImportError as e:
        return [py, Result("widgets ext", FAIL, f"cannot look for JupyterLab's extensions: {_one_line(e)}", SETUP_FIX)]
    if not found:
        return [py, Result("widgets ext", FAIL, f"{WIDGET_EXTENSION} is not in JupyterLab's extension folders",
                           fix_ext)]
    if disabled:
        return [py, Result("widgets ext", FAIL, f"{WIDGET_EXTENSION} is installed but disabled in JupyterLab",
                           f"`jupyter labextension enable {WIDGET_EXTENSION}`, then reload JupyterLab")]
    return [py, Result("widgets ext", OK, f"{WIDGET_EXTENSION} (jupyterlab_widgets {lab}) enabled, in {found[0]}")]


# --------------------------------------------------------------------------- device, data, folders

def check_device() -> Result:
    try:
        import torch

        from .utils import describe_device, get_device  # deferred: see the module docstring

        device = get_device()
        name = describe_device(device)
    except ImportError as e:
        return Result("device", FAIL, f"cannot import PyTorch: {_one_line(e)}", "fix the torch line first")
    except Exception as e:  # MINIGPT_DEVICE asks for a device that is not there
        return Result("device", FAIL, _one_line(e), "unset MINIGPT_DEVICE (or set it to cpu) and try again")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return Result("device", OK, f"{name}: lessons use this GPU; training in bf16")
        return Result("device", OK, f"{name}: lessons use this GPU; no bf16 on it, so training uses fp16 "
                      "with loss scaling")
    if device.type == "mps":
        return Result("device", OK, f"{name}: lessons use the Apple GPU in fp32 (bf16 is not used on MPS)")
    from .precision import cpu_bf16_support  # deferred: see the module docstring

    ok, what = cpu_bf16_support()
    bf16 = (f"bf16 instructions ({what}): training picks bf16 for models wider than 128 where a short probe "
            "finds it faster" if ok else f"no bf16 instructions ({what}): training stays in fp32")
    return Result("device", OK, f"{name}: no GPU found, lessons run on the CPU (they are sized for it); {bf16}")


def check_data() -> list[Result]:
    """Both data sets found (offline folder or cache) with the right size and SHA-256; never downloads."""
    try:
        from . import data  # deferred: see the module docstring
    except Exception as e:
        return [Result("data", FAIL, f"cannot load minigpt.data: {_one_line(e)}", SETUP_FIX)]
    fix = ("`python -m minigpt data --download` (needs internet), or copy names.txt and tinyshakespeare.txt "
           "into a folder and set MINIGPT_DATA_DIR to it")
    out = []
    for name in data.DATASETS:
        try:
            info = data.status(name)
        except data.DataError as e:  # a file there that cannot be read
            out.append(Result(f"data {name}", FAIL, _one_line(e), fix))
            continue
        if info["sha256_ok"]:
            out.append(Result(f"data {name}", OK, f"{info['path']} ({info['source']}, {info['bytes']:,} bytes, "
                              "sha256 ok)"))
        else:
            why = info.get("error", "").split(". Download ")[0]
            out.append(Result(f"data {name}", FAIL, f"missing or corrupt: {why}", fix))
    return out


def _existing_parent(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(folders: list[Path]) -> Result:
    """Free space where runs and the data cache go (the smallest, when they are on different disks)."""
    worst = None
    for folder in folders:
        where = _existing_parent(folder)
        try:
            free = shutil.disk_usage(where).free
        except OSError:
            continue
        if worst is None or free < worst[0]:
            worst = (free, where)
    if worst is None:
        return Result("disk", WARN, "cannot read the free space", "check that the course folder is on a local disk")
    free_gb, where = worst[0] / 1e9, worst[1]
    fix = f"free some space on the disk of {where}, or set MINIGPT_RUNS_DIR to a folder on a bigger disk"
    if free_gb < DISK_FAIL_GB:
        return Result("disk", FAIL, f"{free_gb:.2f} GB free at {where}; training runs need {DISK_WARN_GB:g} GB", fix)
    if free_gb < DISK_WARN_GB:
        return Result("disk", WARN, f"{free_gb:.1f} GB free at {where}; {DISK_WARN_GB:g} GB is comfortable", fix)
    return Result("disk", OK, f"{free_gb:.1f} GB free at {where}")


def write_test(folder: Path) -> str | None:
    """None when a file can be created, written, read back and removed in ``folder`` (made if missing);
    else why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix=".minigpt-doctor-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(b"minigpt")
            if Path(name).read_bytes() != b"minigpt":
                return f"a file written to {folder} read back differently"
        finally:
            os.unlink(name)
    except OSError as e:
        return f"cannot write to {folder}: {e.strerror or type(e).__name__}"
    return None


def check_folders(data_results: list[Result]) -> list[Result]:
    from .utils import runs_dir  # deferred: see the module docstring

    out = []
    runs = runs_dir()
    problem = write_test(runs)
    if problem:
        out.append(Result("runs folder", FAIL, problem + " (lessons 06-12 save their training runs there)",
                          "make that folder writable, or set MINIGPT_RUNS_DIR to a writable folder"))
    else:
        out.append(Result("runs folder", OK, f"{runs} is writable"))
    try:
        from .data import cache_dir  # deferred: see the module docstring

        cache = cache_dir()
    except Exception as e:
        return out + [Result("data cache", FAIL, f"cannot load minigpt.data: {_one_line(e)}", SETUP_FIX)]
    problem = write_test(cache)
    if not problem:
        out.append(Result("data cache", OK, f"{cache} is writable"))
    elif all(r.status == OK for r in data_results):  # nothing needs downloading
        out.append(Result("data cache", WARN, f"{problem}; not needed now, the data is already here",
                          "set XDG_CACHE_HOME to a writable folder if you ever download data"))
    else:
        out.append(Result("data cache", FAIL, f"{problem}, so missing data cannot be downloaded",
                          "set XDG_CACHE_HOME to a writable folder, or MINIGPT_DATA_DIR to a folder with the data"))
    return out


def check_fast_mode() -> Result | None:
    from .utils import fast_mode  # deferred: see the module docstring

    if fast_mode():
        return Result("FAST mode", WARN, "MINIGPT_FAST is set: lessons run their tiny test size, and their numbers "
                      "differ from the prose", "unset MINIGPT_FAST before starting JupyterLab")
    return None


def check_trained_model(estimate: str = "") -> Result:
    """The course's trained model (lesson 07's run), which lessons 08-12 load."""
    try:
        # deferred: a broken install must give a fail line (see the module docstring)
        from .pretrained import course_config, default_preset, inspect_run

        preset = default_preset()
        cfg = course_config(preset, fast=False)
        state, detail = inspect_run(cfg)
    except Exception as e:
        return Result("trained model", WARN, f"cannot inspect the course's run: {_one_line(e)}", SETUP_FIX)
    where = cfg.out_dir
    took = f" ({estimate} here)" if estimate else ""
    if state == "done":
        return Result("trained model", OK, f"{where} holds lesson 07's model ({detail}); lessons 08-12 load it")
    if state == "partial":
        return Result("trained model", WARN, f"{where} holds an interrupted run ({detail} of {cfg.max_iters:,})",
                      "run lesson 07 (or `python -m minigpt train --resume`) to finish it" + took)
    if state == "unusable":
        return Result("trained model", WARN, f"{where} cannot be used: {detail}",
                      f"move that folder away; lesson 07 trains a new one{took}")
    return Result("trained model", WARN, f"none yet in {where}: lesson 07 trains it, lessons 08-12 train it on "
                  "first use", f"for a workshop that starts after lesson 07, train it beforehand with "
                  f"`python -m minigpt train --preset {preset}`{took}")


# --------------------------------------------------------------------------- speed probe

def _probe_text() -> dict[str, str]:
    """A slice of Tiny Shakespeare's split; made-up text with its 65 characters when the data is missing
    (the speed does not depend on what the text says)."""
    try:
        from .data import DataError, locate, shakespeare_split  # deferred: see the module docstring

        path, _ = locate("tinyshakespeare", download_missing=False)  # the doctor never downloads
        sp = shakespeare_split(path.read_text(encoding="utf-8"))
        return {"train": sp["train"][:200_000], "val": sp["val"][:20_000]}
    except (DataError, OSError):
        import random

        chars = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        rng = random.Random(0)
        text = "".join(rng.choice(chars) for _ in range(60_000))
        return {"train": chars + text[:50_000], "val": chars + text[50_000:]}


def speed_probe(seconds: float = 6.0, preset: str | None = None, device=None, text=None) -> dict:
    """Time a few training steps of lesson 07's recipe here and extrapolate to the whole run.

    Runs the real trainer (:func:`minigpt.train.train`) on ``preset`` (default: the recipe lesson 07
    uses on this device), without checkpoints, samples or ``torch.compile``: 3 steps to measure a step,
    then as many as fit in about ``seconds``. The estimate adds the run's evaluations (a forward pass
    costs about a third of a training step per token).
    """
    import torch

    from .pretrained import default_preset  # deferred: see the module docstring
    from .train import get_preset, train  # deferred: see the module docstring
    from .utils import get_device  # deferred: see the module docstring

    device = get_device(device)
    preset = preset or default_preset(device)
    full = get_preset(preset)
    text = text or _probe_text()
    base = dataclasses.replace(full, warmup_iters=0, eval_interval=10**9, eval_tokens=full.block_size * 8,
                               sample_tokens=0, out_dir=None, compile=False)
    t0 = time.perf_counter()
    first = train(dataclasses.replace(base, max_iters=3), device=device, progress=False, text=text)
    tokens_per_step = full.batch_size * full.block_size * full.grad_accum_steps
    step_s = tokens_per_step / max(first.tokens_per_s, 1e-9)
    left = seconds - (time.perf_counter() - t0)
    steps = int(min(500, max(3, left / step_s)))
    result = train(dataclasses.replace(base, max_iters=steps), device=device, progress=False, text=text)
    tps = result.tokens_per_s
    train_s = full.max_iters * tokens_per_step / tps
    n_evals = full.max_iters // full.eval_interval + (full.max_iters % full.eval_interval != 0)
    from .data import DATASETS, SHAKESPEARE_TRAIN_FRACTION  # deferred: see the module docstring

    val_tokens = DATASETS["tinyshakespeare"].size * (1 - SHAKESPEARE_TRAIN_FRACTION)  # one character a token
    eval_s = n_evals * val_tokens / (3 * tps)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return {"preset": preset, "device": str(device), "steps_timed": steps - 1, "tokens_per_s": tps,
            "max_iters": full.max_iters, "tokens_per_step": tokens_per_step,
            "estimated_s": train_s + eval_s, "probe_s": time.perf_counter() - t0}


def _minutes(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.0f} min" if s < 5400 else f"{s / 3600:.1f} h"


def check_speed(seconds: float) -> tuple[Result, dict | None]:
    try:
        p = speed_probe(seconds)
    except Exception as e:  # training does not work here: the lessons from 06 on will not either
        return Result("speed", FAIL, f"a few training steps failed: {_one_line(e)}",
                      "run `python -m minigpt train --preset tiny` to see the whole error"), None
    what = (f"lesson 07 ({p['preset']}, {p['max_iters']:,} steps) takes about {_minutes(p['estimated_s'])} here "
            f"({p['tokens_per_s']:,.0f} tokens/s over {p['steps_timed']} timed steps)")
    if p["estimated_s"] > SLOW_LESSON_07_S:
        return Result("speed", WARN, what, "start lesson 07's training before a break, or share one trained run "
                      "(copy runs/ from a faster machine); close other programs"), p
    return Result("speed", OK, what), p


def check_cpu_recipe(seconds: float) -> Result | None:
    """On a CPU: whether bf16 is native here (which decides Muon's precision) and how long the
    10-minute CPU recipe (``shakespeare-char-cpu-10min``, the speedrun record) takes. None on a GPU."""
    import torch

    from .optim import muon_precision  # deferred: see the module docstring
    from .precision import cpu_bf16_support  # deferred: see the module docstring
    from .utils import get_device  # deferred: see the module docstring

    if get_device().type != "cpu":
        return None  # GPUs train the GPU recipe: the speed line covers them
    ok, what = cpu_bf16_support()
    dtype, why = muon_precision("cpu")
    if not ok:
        kind = f"no native bf16 ({what})"
    elif dtype != torch.bfloat16:  # the flags say bf16, but this PyTorch does not use it (or it is emulated)
        kind = f"no native bf16 ({what} in the flags, but {why.split(': ', 1)[1]})"
    else:
        kind = f"native bf16 ({what})"
    p = speed_probe(seconds, preset=TEN_MINUTE_RECIPE, device="cpu")
    detail = (f"{kind}: Muon orthogonalises in {'bf16' if dtype == torch.bfloat16 else 'fp32'}; the 10-minute recipe "
              f"({TEN_MINUTE_RECIPE}, {p['max_iters']:,} steps) takes about {_minutes(p['estimated_s'])} here "
              f"({p['tokens_per_s']:,.0f} tokens/s)")
    if p["estimated_s"] > SLOW_LESSON_07_S:
        return Result("10-min recipe", WARN, detail, "its figures are for 4,000 steps, not 10 minutes, here; "
                      "lesson 07's shakespeare-char-cpu preset is the shorter run")
    return Result("10-min recipe", OK, detail)


# --------------------------------------------------------------------------- all together

def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) < 300 else text[:297] + "..."


def _guard(fn, *args) -> list[Result]:
    """Run one check; a check that crashes is itself a ``fail`` line, never a traceback."""
    name = fn.__name__.removeprefix("check_").replace("_", " ")
    try:
        out = fn(*args)
    except Exception as e:
        return [Result(name, FAIL, f"the check crashed: {type(e).__name__}: {_one_line(e)}", SETUP_FIX)]
    if out is None:
        return []
    return list(out) if isinstance(out, (list, tuple)) else [out]


def run_checks(probe_seconds: float = 6.0) -> tuple[list[Result], dict | None]:
    """Every check, in the order of the report; ``probe_seconds`` 0 skips the speed probe."""
    results: list[Result] = []
    results += _guard(check_python)
    results += _guard(check_torch)
    results += _guard(check_package, "jupyterlab", "4.0", True, "the course runs in JupyterLab")
    results += _guard(check_widgets)
    results += _guard(check_package, "nbval", "0.11", False, "only to run the notebook tests",
                      "`pip install -e '.[dev]'` (or `make test` once)")
    results += _guard(check_device)
    data_results = _guard(check_data)
    results += data_results
    try:
        from .data import cache_dir  # deferred: see the module docstring
        from .utils import runs_dir  # deferred: see the module docstring

        folders = [runs_dir(), cache_dir()]
    except Exception:
        folders = [Path.cwd()]
    results += _guard(check_disk, folders)
    results += _guard(check_folders, data_results)
    results += _guard(check_fast_mode)
    probe = None
    estimate = ""
    if probe_seconds > 0:
        speed = []
        try:
            r, probe = check_speed(probe_seconds)
            speed = [r]
        except Exception as e:
            speed = [Result("speed", FAIL, f"the check crashed: {_one_line(e)}", SETUP_FIX)]
        if probe:
            estimate = f"about {_minutes(probe['estimated_s'])}"
        results += _guard(check_trained_model, estimate) + speed + _guard(check_cpu_recipe, probe_seconds)
    else:
        results += _guard(check_trained_model, "")
    return results, probe


def report(results: list[Result]) -> dict:
    counts = {s: sum(r.status == s for r in results) for s in (OK, WARN, FAIL)}
    return {"ok": counts[FAIL] == 0, "counts": counts, "machine": platform.node(), "platform": platform.platform(),
            "checks": [dataclasses.asdict(r) for r in results]}
