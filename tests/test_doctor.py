"""``python -m minigpt doctor``: ok / warn / fail lines with the fix, exit 1 on a failure, --json."""

import json
from importlib import metadata

import pytest

from minigpt import cli, doctor
from minigpt.commands import doctor as doctor_command
from minigpt.doctor import FAIL, OK, WARN


def by_name(results):
    return {r.name: r for r in results}


@pytest.fixture
def healthy(tmp_path, monkeypatch):
    """Runs and cache in fresh writable folders; the data from the offline folder the suite uses."""
    monkeypatch.setenv("MINIGPT_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("MINIGPT_FAST", raising=False)
    monkeypatch.delenv("MINIGPT_DEVICE", raising=False)
    return tmp_path


def test_every_check_reports_and_a_healthy_machine_passes(healthy, capsys):
    rc = cli.main(["doctor", "--no-probe", "--json"])
    lines = capsys.readouterr().out.strip().splitlines()
    report = json.loads(lines[-1])
    assert rc == (0 if report["ok"] else 1)
    names = [c["name"] for c in report["checks"]]
    for expected in ("python", "torch", "jupyterlab", "ipywidgets", "widgets ext", "nbval", "device",
                     "data names", "data tinyshakespeare", "disk", "runs folder", "data cache", "trained model"):
        assert expected in names
    # this machine is set up (the data may be absent on a fresh clone: the suite downloads it later)
    assert [c["name"] for c in report["checks"] if c["status"] == FAIL and not c["name"].startswith("data")] == []
    assert all(c["status"] in (OK, WARN, FAIL) for c in report["checks"])
    # each check is one text line, starting with its status
    assert [line.split()[0] for line in lines[: len(names)]] == [c["status"] for c in report["checks"]]
    assert lines[len(names)].startswith("doctor: ")
    # a fresh runs folder has no trained model yet: a warning that says how to get one, not a failure
    model = by_name(doctor.run_checks(0)[0])["trained model"]
    assert model.status == WARN and "python -m minigpt train" in model.fix


def test_missing_data_fails_with_the_fix_and_exit_1(healthy, monkeypatch, capsys):
    empty = healthy / "no-data"
    empty.mkdir()
    monkeypatch.setenv("MINIGPT_DATA_DIR", str(empty))
    assert cli.main(["doctor", "--no-probe"]) == 1
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.split()[1:3] == ["data", "names"])
    assert line.startswith("fail") and "to fix: `python -m minigpt data --download`" in line
    assert "MINIGPT_DATA_DIR" in line
    assert "fix the failures above" in out.splitlines()[-1]


def test_unwritable_runs_folder_fails(healthy, monkeypatch):
    blocker = healthy / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MINIGPT_RUNS_DIR", str(blocker / "runs"))  # a file in the way: unwritable, even as root
    got = by_name(doctor.run_checks(0)[0])
    assert got["runs folder"].status == FAIL and "cannot write to" in got["runs folder"].detail
    assert "MINIGPT_RUNS_DIR" in got["runs folder"].fix
    assert not list(healthy.glob("**/.minigpt-doctor-*"))  # the write test cleans up after itself


def test_unwritable_cache_is_a_warning_when_the_data_is_already_here(healthy, monkeypatch):
    blocker = healthy / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    got = by_name(doctor.run_checks(0)[0])
    if all(got[f"data {n}"].status == OK for n in ("names", "tinyshakespeare")):
        assert got["data cache"].status == WARN
    empty = healthy / "no-data"
    empty.mkdir()
    monkeypatch.setenv("MINIGPT_DATA_DIR", str(empty))
    got = by_name(doctor.run_checks(0)[0])
    assert got["data cache"].status == FAIL and "cannot be downloaded" in got["data cache"].detail


@pytest.mark.parametrize("missing, status", [("jupyterlab", FAIL), ("nbval", WARN), ("ipywidgets", FAIL),
                                             ("jupyterlab_widgets", FAIL)])
def test_a_missing_package_is_named_with_the_fix(healthy, monkeypatch, missing, status):
    real = metadata.version

    def version(dist):
        if dist == missing:
            raise metadata.PackageNotFoundError(dist)
        return real(dist)

    monkeypatch.setattr(doctor.metadata, "version", version)
    results = doctor.run_checks(0)[0]
    bad = [r for r in results if r.status != OK and missing in (r.name + r.detail)]
    assert [r.status for r in bad] == [status]
    assert bad[0].fix
    assert ("not installed" in bad[0].detail) or ("jupyterlab_widgets is not installed" in bad[0].detail)


def test_an_old_package_is_too_old(monkeypatch):
    monkeypatch.setattr(doctor, "_version", lambda dist: "3.2.1")
    r = doctor.check_package("jupyterlab", "4.0")
    assert r.status == FAIL and "3.2.1 is too old" in r.detail


def test_widget_extension_missing_or_disabled(healthy, monkeypatch):
    monkeypatch.setattr(doctor, "labextension_dirs", lambda: [healthy])
    ext = by_name(doctor.check_widgets())["widgets ext"]
    assert ext.status == FAIL and "not in JupyterLab's extension folders" in ext.detail
    monkeypatch.undo()
    conf = healthy / "jupyter-config" / "labconfig"
    conf.mkdir(parents=True)
    (conf / "page_config.json").write_text(json.dumps({"disabledExtensions": {doctor.WIDGET_EXTENSION: True}}))
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", str(healthy / "jupyter-config"))
    ext = by_name(doctor.check_widgets())["widgets ext"]
    assert ext.status == FAIL and "disabled" in ext.detail
    assert f"jupyter labextension enable {doctor.WIDGET_EXTENSION}" in ext.fix


def test_old_python_fails():
    assert doctor.check_python(minimum=(3, 99)).status == FAIL
    assert doctor.check_python().status == OK


def test_fast_mode_and_a_bad_device_are_reported(healthy, monkeypatch):
    monkeypatch.setenv("MINIGPT_FAST", "1")
    monkeypatch.setenv("MINIGPT_DEVICE", "cuda:7" if not __import__("torch").cuda.is_available() else "mps")
    got = by_name(doctor.run_checks(0)[0])
    assert got["FAST mode"].status == WARN and "unset MINIGPT_FAST" in got["FAST mode"].fix
    assert got["device"].status == FAIL and "MINIGPT_DEVICE" in got["device"].fix


def test_a_crashing_check_is_a_fail_line_not_a_traceback(monkeypatch):
    def boom():
        raise RuntimeError("disk on fire")

    boom.__name__ = "check_disk_space"
    [r] = doctor._guard(boom)
    assert r.status == FAIL and "disk on fire" in r.detail and r.name == "disk space"


def test_speed_probe_extrapolates_the_real_trainer(one_thread, text):
    p = doctor.speed_probe(seconds=0.5, preset="shakespeare-char-cpu", device="cpu", text=text)
    assert p["preset"] == "shakespeare-char-cpu" and p["max_iters"] == 3500 and p["tokens_per_step"] == 32 * 64
    assert p["steps_timed"] >= 2 and p["tokens_per_s"] > 0
    training = p["max_iters"] * p["tokens_per_step"] / p["tokens_per_s"]
    assert training < p["estimated_s"] < 1.2 * training  # evaluations add a few percent
    r, probe = doctor.check_speed(0.5)
    assert r.name == "speed" and "lesson 07" in r.detail and probe["estimated_s"] > 0


def test_bad_probe_seconds_is_one_line(capsys):
    assert cli.main(["doctor", "--probe-seconds", "-1"]) == 2
    assert "error: --probe-seconds must be >= 0" in capsys.readouterr().err


def test_a_torch_that_does_not_import_is_a_fail_line(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "torch", None)  # `import torch` now raises ImportError
    r = doctor.check_torch()
    assert r.status == FAIL and "does not work" in r.detail and "reinstall" in r.fix
    device = doctor.check_device()
    assert device.status == FAIL and "torch line" in device.fix


def test_the_module_runs_on_its_own(healthy, capsys):
    # `python -m minigpt.commands.doctor`: for when the main command line cannot start
    assert doctor_command.main(["--no-probe"]) in (0, 1)
    assert capsys.readouterr().out.splitlines()[-1].startswith("doctor: ")


def test_the_cpu_recipe_line_names_the_cpu_kind_and_the_recipes_time(one_thread, monkeypatch):
    from minigpt import optim, precision

    monkeypatch.delenv("MINIGPT_DEVICE", raising=False)
    monkeypatch.setattr(doctor, "speed_probe", lambda seconds, preset, device: {
        "preset": preset, "max_iters": 4000, "estimated_s": 540.0, "tokens_per_s": 15_600.0})
    for module in (optim, precision):
        monkeypatch.setattr(module, "cpu_bf16_support", lambda: (True, "AVX512-BF16"))
    monkeypatch.setattr(optim, "_probe_bf16_matmul", lambda threads: 1.9)
    r = doctor.check_cpu_recipe(1.0)
    assert r.status == OK and r.detail.startswith("native bf16 (AVX512-BF16): Muon orthogonalises in bf16")
    assert "shakespeare-char-cpu-10min, 4,000 steps) takes about 9 min here (15,600 tokens/s)" in r.detail
    # an emulated AVX2 CPU: the flags say bf16, the probe finds it 60x slower
    monkeypatch.setattr(optim, "_probe_bf16_matmul", lambda threads: 1 / 60)
    monkeypatch.setattr(doctor, "speed_probe", lambda seconds, preset, device: {
        "preset": preset, "max_iters": 4000, "estimated_s": 4000.0, "tokens_per_s": 2_100.0})
    r = doctor.check_cpu_recipe(1.0)
    assert r.status == WARN and r.detail.startswith(
        "no native bf16 (AVX512-BF16 in the flags, but bf16 Newton-Schulz ran 60.0x slower")
    assert "Muon orthogonalises in fp32" in r.detail and "4,000 steps, not 10 minutes" in r.fix
    for module in (optim, precision):
        monkeypatch.setattr(module, "cpu_bf16_support", lambda: (False, "no AVX512-BF16, AMX or Arm BF16"))
    assert doctor.check_cpu_recipe(1.0).detail.startswith(
        "no native bf16 (no AVX512-BF16, AMX or Arm BF16): Muon orthogonalises in fp32")


def test_the_cpu_recipe_probe_times_the_real_preset_with_muon(one_thread, monkeypatch):
    from minigpt import optim

    monkeypatch.delenv("MINIGPT_DEVICE", raising=False)
    monkeypatch.setattr(optim, "cpu_bf16_support", lambda: (False, "no AVX512-BF16, AMX or Arm BF16"))
    r = doctor.check_cpu_recipe(0.5)
    assert r.name == "10-min recipe" and "Muon orthogonalises in fp32" in r.detail
    assert "shakespeare-char-cpu-10min, 4,000 steps" in r.detail and "tokens/s" in r.detail
