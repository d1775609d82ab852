"""The lessons' ipywidgets render and respond in a real JupyterLab, in a real (headless) Chromium.

For each lesson in LESSONS, and one lesson of the Chinese edition (ZH_LESSONS): open it in JupyterLab, choose Run > Run All Cells, wait until every cell
has run and the kernel is idle, then check that no output is an error or a traceback, that every
widget output shows its widget (no "Error displaying widget", no "Loading widget..." left), and
that moving one control by one step from the keyboard makes the kernel redraw the figure that
control drives. Screenshots of the page and of the widget, after the run and after the move, go to
the folder named at the end of pytest's output.

Run with ``make test-browser`` (it is not part of ``make test``). It skips, with the reason, when no
Chromium is found (see find_chromium.py).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

RUN_TIMEOUT_S = 300  # one lesson's Run All in FAST mode (seconds here; generous for a busy machine)
REDRAW_TIMEOUT_S = 60  # one control move -> the kernel redraws the figure


@dataclass(frozen=True)
class Lesson:
    """One row of the table: which notebook, which control to move, which figure must change."""

    notebook: str  # file name (a glob) under folder
    control: str | None  # the description label of the slider to move by one step (None: no slider to move)
    figure: str = ".widget-output img"  # inside the widget that holds the control: the redrawn figure
    required: bool = True  # False: tested only when the notebook exists
    folder: str = "notebooks"  # zh/notebooks: the Chinese edition


LESSONS = (
    Lesson("05_self_attention.ipynb", control="head"),  # AttentionExplorer: head -> heatmap
    Lesson("08_generation.ipynb", control="temperature"),  # Sampler: temperature -> next-token bar chart
    Lesson("09_*.ipynb", control="head", required=False),  # the explorer on the trained model
)
# One lesson of the Chinese edition (the first of these that is built; one only, for CI's time): its prose
# must be Chinese and, for 05, the explorer's labels too (the kernel runs in zh/notebooks, so minigpt's
# widgets speak Chinese). 00 is the fallback while lesson 05 is being translated.
ZH_LESSONS = (
    Lesson("05_self_attention.ipynb", control="头", folder="zh/notebooks", required=False),
    Lesson("00_setup.ipynb", control=None, folder="zh/notebooks"),  # its slider redraws text, not a figure
)


def _cases():
    for lesson in LESSONS:
        found = sorted((ROOT / lesson.folder).glob(lesson.notebook))
        if found:
            yield from (pytest.param(lesson, path.name, id=path.stem) for path in found)
        elif lesson.required:
            yield pytest.param(lesson, lesson.notebook, id=lesson.notebook.removesuffix(".ipynb"))
    zh = next((lesson for lesson in ZH_LESSONS if (ROOT / lesson.folder / lesson.notebook).exists()), ZH_LESSONS[-1])
    yield pytest.param(zh, zh.notebook, id=f"zh-{zh.notebook.removesuffix('.ipynb')}")


# --- what the page shows -------------------------------------------------------------------------------
# window.jupyterapp exists because the server runs with --LabApp.expose_app_in_browser=True.
_NOTEBOOK_STATE = """(path) => {
  const panel = [...window.jupyterapp.shell.widgets('main')].find(w => w.context && w.context.path === path);
  if (!panel || !panel.content) return null;
  const cells = [];
  panel.content.widgets.forEach((cell, index) => {
    if (cell.model.type !== 'code') return;
    const area = cell.node.querySelector('.jp-Cell-outputArea');
    const children = area ? [...area.querySelectorAll(':scope > .jp-OutputArea-child')] : [];
    const outputs = cell.model.outputs.toJSON().map((o, k) => {
      const node = children[k] ? children[k].querySelector(':scope > .jp-OutputArea-output') : null;
      const view = o.data ? o.data['application/vnd.jupyter.widget-view+json'] : undefined;
      return {
        type: o.output_type,
        widget: view !== undefined,
        model_id: view ? view.model_id : null,
        rendered: !!(node && node.querySelector(':scope > .jupyter-widgets')),
        hidden: !!(node && node.classList.contains('lm-mod-hidden')),
        text: node ? node.textContent.slice(0, 200) : null,
        error: o.output_type === 'error' ? `${o.ename}: ${o.evalue}` : null,
      };
    });
    const prompt = cell.node.querySelector('.jp-InputPrompt');
    cells.push({index, count: cell.model.executionCount, prompt: prompt ? prompt.textContent.trim() : '',
                source: cell.model.sharedModel.getSource().split('\\n')[0].slice(0, 100), outputs});
  });
  const texts = [...panel.node.querySelectorAll('.jp-OutputArea-output')].map(n => n.textContent);
  const markdown = [...panel.node.querySelectorAll('.jp-MarkdownOutput')].map(n => n.textContent).join(' ');
  const tracebacks = [...panel.node.querySelectorAll(
      '.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]')]
    .map(n => n.textContent).filter(t => t.includes('Traceback'));
  return {cells, tracebacks, markdown,
          error_widgets: texts.filter(t => t.includes('Error displaying widget')).length,
          loading_widgets: texts.filter(t => t.includes('Loading widget')).length};
}"""


def notebook_state(page, path: str) -> dict:
    state = page.evaluate(_NOTEBOOK_STATE, path)
    assert state is not None, f"{path} is not open in JupyterLab"
    return state


def open_notebook(page, lab, path: str) -> None:
    page.goto(lab.lab_url(path))
    page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(timeout=90_000)
    _wait(lambda: lab.kernel_state(path) == "idle", 90, f"the kernel of {path} did not start", lab)


def run_all_cells(page) -> None:
    """Run > Run All Cells, through the menu bar as a learner would."""
    page.locator(".lm-MenuBar-item").filter(has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()


def _wait(condition, timeout: float, message: str, lab=None, page=None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            tail = f"\n--- jupyter server log (end) ---\n{lab.log_tail()}" if lab else ""
            raise AssertionError(f"{message} within {timeout:.0f} s{tail}")
        if page is not None:
            page.wait_for_timeout(500)  # lets Playwright handle the page's events meanwhile
        else:
            time.sleep(0.5)


def wait_until_run(page, lab, path: str) -> dict:
    """Wait until no cell is queued or running and the kernel is idle twice in a row; the final state."""
    settled = []

    def done() -> bool:
        state = notebook_state(page, path)
        kernel = lab.kernel_state(path)
        assert kernel != "dead", f"the kernel of {path} died:\n{lab.log_tail()}"
        quiet = kernel == "idle" and not any("*" in c["prompt"] for c in state["cells"])
        settled.append(quiet)
        return len(settled) >= 2 and settled[-1] and settled[-2]

    _wait(done, RUN_TIMEOUT_S, f"Run All Cells did not finish in {path}", lab, page)
    # Widget views render after their output arrives: give "Loading widget..." time to go away.
    _wait(lambda: notebook_state(page, path)["loading_widgets"] == 0, 30,
          f"a widget in {path} still says 'Loading widget...'", lab, page)
    return notebook_state(page, path)


def check_outputs(state: dict, name: str) -> int:
    """Assert every cell ran, no errors, every widget view is shown; returns how many views are shown."""
    cells = state["cells"]
    assert cells, f"{name}: no code cells found on the page"
    not_run = [c for c in cells if c["count"] is None]
    assert not not_run, (f"{name}: {len(not_run)} cell(s) did not run, the first is cell {not_run[0]['index']} "
                         f"({not_run[0]['source']!r}); an earlier cell probably failed")
    errors = [f"cell {c['index']} ({c['source']!r}): {o['error']}" for c in cells for o in c["outputs"] if o["error"]]
    assert not errors, f"{name}: error outputs:\n" + "\n".join(errors)
    assert not state["tracebacks"], f"{name}: a traceback on stderr:\n" + "\n\n".join(state["tracebacks"])
    assert state["error_widgets"] == 0, f"{name}: {state['error_widgets']} output(s) say 'Error displaying widget'"
    assert state["loading_widgets"] == 0, f"{name}: {state['loading_widgets']} output(s) still say 'Loading widget'"
    shown, missing = 0, []
    for c in cells:
        for o in c["outputs"]:
            if not o["widget"]:
                continue
            if o["rendered"]:
                shown += 1
            elif not (o["hidden"] or o["model_id"] == ""):  # hidden: the kernel closed the widget
                missing.append(f"cell {c['index']} ({c['source']!r}): {o['text']!r}")
    assert not missing, f"{name}: widget output(s) without their widget:\n" + "\n".join(missing)
    assert shown >= 1, f"{name}: no widget is shown on the page"
    return shown


# --- the control and its figure -------------------------------------------------------------------------
def control_widget(page, lesson: Lesson, name: str):
    """(the top-level widget that holds the slider labelled lesson.control, that slider)."""
    label = page.locator("label.widget-label").filter(has_text=re.compile(rf"^\s*{re.escape(lesson.control)}\s*$"))
    slider = page.locator(".widget-slider").filter(has=label)
    roots = page.locator(".jp-Cell-outputArea > .jp-OutputArea-child > .jp-OutputArea-output > .jupyter-widgets")
    root = roots.filter(has=slider).first
    assert root.count() == 1, (f"{name}: no widget with a slider labelled {lesson.control!r}; "
                               f"update LESSONS in {Path(__file__).name}")
    return root, root.locator(".widget-slider").filter(has=label).first


def figure_sources(root, lesson: Lesson) -> list[str]:
    return [s for s in root.locator(lesson.figure).evaluate_all("els => els.map(e => e.getAttribute('src'))") if s]


# True when every image is loaded and decoded (checked after two animation frames).
_DECODED = """async (els) => {
  const ok = await Promise.all(els.map(e => e.decode().then(() => e.naturalWidth > 0, () => false)));
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return ok.every(Boolean);
}"""


def settled_figure(page, root, lesson: Lesson, lab, path: str, changed_from: list[str] | None = None) -> list[str]:
    """The figure's sources once the kernel is idle, every image is decoded and nothing changed for 0.5 s;
    with ``changed_from``, also different from those."""
    seen: list[list[str]] = []

    def settled() -> bool:
        now = figure_sources(root, lesson)
        decoded = root.locator(lesson.figure).evaluate_all(_DECODED)
        seen.append(now)
        return (bool(now) and decoded and len(seen) >= 2 and seen[-1] == seen[-2]
                and (changed_from is None or now != changed_from) and lab.kernel_state(path) == "idle")

    what = "change" if changed_from is not None else "settle"
    _wait(settled, REDRAW_TIMEOUT_S, f"{path}: the figure ({lesson.figure}) inside the widget with "
          f"{lesson.control!r} did not {what}", lab, page)
    return seen[-1]


def move_one_step(page, slider) -> tuple[str, str]:
    """Focus the slider's handle and press ArrowRight (ArrowLeft at the maximum); (readout before, after)."""
    readout = slider.locator(".widget-readout")
    handle = slider.locator(".noUi-handle")
    before = readout.inner_text().strip()
    for key in ("ArrowRight", "ArrowLeft"):
        handle.focus()
        handle.press(key)
        page.wait_for_timeout(300)
        after = readout.inner_text().strip()
        if after != before:
            return before, after
    return before, before


def screenshots(page, root, stem: Path) -> None:
    """STEM.png: the whole page (JupyterLab fills the window, so it is the window) with the widget in view;
    STEM-widget.png: the widget alone."""
    root.scroll_into_view_if_needed()
    page.wait_for_timeout(300)  # a repaint after scrolling
    page.screenshot(path=stem.with_name(stem.name + ".png"), full_page=True)
    root.screenshot(path=stem.with_name(stem.name + "-widget.png"))


# --- the test ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("lesson", "notebook"), list(_cases()))
def test_lesson_widgets_render_and_respond(lesson: Lesson, notebook: str, lab, browser, screenshot_dir, report):
    path = f"{lesson.folder}/{notebook}"
    stem = ("zh-" if lesson.folder.startswith("zh") else "") + Path(notebook).stem
    assert (lab.work / path).exists(), f"{path} not found: update LESSONS in {Path(__file__).name}"
    fast_before = len(lab.fast_lines())
    context = browser.new_context(viewport={"width": 1440, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(60_000)
    console = []
    page.on("pageerror", lambda e: console.append(f"page error: {e}"))
    page.on("console", lambda m: console.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    t0 = time.monotonic()
    try:
        open_notebook(page, lab, path)
        t_open = time.monotonic()
        run_all_cells(page)
        state = wait_until_run(page, lab, path)
        t_run = time.monotonic()
        shown = check_outputs(state, notebook)
        if lesson.folder.startswith("zh"):
            cjk = sum("\u4e00" <= ch <= "\u9fff" for ch in state["markdown"])
            assert cjk > 100, f"{path}: the rendered prose has {cjk} Chinese characters; is it the Chinese edition?"
        fast = lab.fast_lines()[fast_before:]
        assert fast and all(line.startswith("fast=1") for line in fast), (
            f"{notebook}: the kernel did not run in FAST mode (fast_mode() log: {fast})")

        if lesson.control is None:
            page.screenshot(path=screenshot_dir / f"{stem}-1-after-run.png", full_page=True)
            moved = "no control moved"
        else:
            root, slider = control_widget(page, lesson, notebook)
            root.scroll_into_view_if_needed()
            figure = settled_figure(page, root, lesson, lab, path)
            screenshots(page, root, screenshot_dir / f"{stem}-1-after-run")

            before, after = move_one_step(page, slider)
            assert after != before, f"{notebook}: the {lesson.control!r} slider did not move from the keyboard"
            settled_figure(page, root, lesson, lab, path, changed_from=figure)
            screenshots(page, root, screenshot_dir / f"{stem}-2-after-{lesson.control}")
            moved = f"{lesson.control} {before} -> {after} redrew the figure"
        t_end = time.monotonic()
        report.append(f"{path}: {len(state['cells'])} code cells, {shown} widget(s) shown, "
                      f"{moved}; open {t_open - t0:.1f} s, "
                      f"run all {t_run - t_open:.1f} s, control {t_end - t_run:.1f} s; "
                      f"{len(console)} browser console error(s)")
        report.extend(f"    {line[:300]}" for line in console[:5])
    except BaseException:
        try:
            page.screenshot(path=screenshot_dir / f"{stem}-failed.png", full_page=True)
        except Exception:
            pass
        if console:
            print(f"browser console of {notebook}:\n" + "\n".join(console[-30:]))
        raise
    finally:
        context.close()
        lab.shutdown_kernels()
