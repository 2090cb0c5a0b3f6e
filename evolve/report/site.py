"""Writing a report folder: index.html, attempts.html, programs/<id>.html, attempts/<iteration>.html, and
assets/ (plotly.min.js from the installed plotly package, report.js, report.css, the pygments stylesheet),
so the site opens offline straight from disk."""
from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
from functools import lru_cache
from pathlib import Path

from evolve.report import code, pages
from evolve.report.data import RunData

STATIC = Path(__file__).parent / "static"
PARALLEL_FROM = 200   # programs; below this, forking workers costs more than it saves


@lru_cache(maxsize=1)
def environment():
    import jinja2
    env = jinja2.Environment(loader=jinja2.PackageLoader("evolve.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    return env


def render(template: str, path: Path, **ctx) -> None:
    path.write_text(environment().get_template(template).render(**ctx), encoding="utf-8")


def copy_assets(out: Path) -> Path:
    import plotly
    assets = out / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    _copy_if_changed(plotly_js, assets / "plotly.min.js")
    for f in STATIC.iterdir():
        if f.suffix in (".js", ".css"):
            _copy_if_changed(f, assets / f.name)
    (assets / "pygments.css").write_text(code.stylesheet(), encoding="utf-8")
    return assets


def _copy_if_changed(src: Path, dst: Path) -> None:
    if dst.exists() and dst.stat().st_size == src.stat().st_size and dst.stat().st_mtime >= src.stat().st_mtime:
        return
    shutil.copy2(src, dst)


def write_report(data: RunData, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "programs").mkdir(exist_ok=True)
    (out / "attempts").mkdir(exist_ok=True)
    copy_assets(out)
    render("index.html", out / "index.html", **pages.index_context(data))
    render("attempts.html", out / "attempts.html", **pages.attempts_context(data))
    calls = data.calls_by_attempt()
    for a in data.attempts:
        if a.status != "ok" and a.program_id is None:
            render("attempt.html", out / "attempts" / f"{a.iteration}.html",
                   **pages.attempt_context(data, a, calls.get(a.id, [])))
    write_program_pages(data, out / "programs")
    return out / "index.html"


# -- program pages, in parallel for large runs -----------------------------------------------------------
_JOB: tuple[pages.ProgramPage, Path] | None = None   # inherited by forked workers, never pickled


def write_program_pages(data: RunData, folder: Path) -> None:
    global _JOB
    ids = list(data.programs)
    _JOB = (pages.ProgramPage.build(data), folder)
    try:
        workers = min(os.cpu_count() or 1, 8)
        if len(ids) < PARALLEL_FROM or workers < 2 or not _can_fork():
            _write_pages(ids)
            return
        chunks = [ids[i::workers] for i in range(workers)]
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            pool.map(_write_pages, chunks)
    finally:
        _JOB = None


def _can_fork() -> bool:
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def _write_pages(ids: list[int]) -> None:
    page, folder = _JOB
    for pid in ids:
        render("program.html", folder / f"{pid}.html", **page.context(page.data.programs[pid]))
