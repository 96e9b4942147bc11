"""Figures for papers: SVG/PNG export with the available backend (kaleido, else headless Chromium), the
whole report's figures from `grokinterp analyze --export-dir`, and a clear error without a backend."""

from __future__ import annotations

import os
import shutil
import struct
import xml.etree.ElementTree as ET

import plotly.graph_objects as go
import pytest

from grokinterp.cli import main
from grokinterp.report import ExportError, export_backend, export_figure, export_figures, run_figures
from grokinterp.report import _export
from grokinterp.analysis import replay
from grokinterp.runs import Run

SVG = "{http://www.w3.org/2000/svg}"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _available() -> bool:
    try:
        export_backend()
        return True
    except ExportError:
        return False


needs_backend = pytest.mark.skipif(not _available() and os.environ.get("CI") != "true",
                                   reason="needs kaleido or chromium (apt-get install chromium); required under CI=true")


def _figure() -> go.Figure:
    fig = go.Figure(go.Scatter(x=[1, 2, 3, 4], y=[4.0, 1.0, 3.0, 2.0], name="curve", mode="lines"))
    fig.update_layout(title="export test")
    return fig


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@needs_backend
def test_svg_and_png_export(tmp_path):
    svg_path = export_figure(_figure(), tmp_path / "fig.svg", width=640, height=360)
    root = ET.parse(svg_path).getroot()  # well-formed XML
    assert root.tag == f"{SVG}svg" and (root.get("width"), root.get("height")) == ("640", "360")
    assert "export test" in "".join(root.itertext())
    lines = [p for p in root.iter(f"{SVG}path") if "js-line" in (p.get("class") or "")]
    assert len(lines) == 1 and lines[0].get("d").count("L") == 3  # the 4 points of the one trace

    png_path = export_figure(_figure(), tmp_path / "fig.png", width=320, height=200, scale=2)
    data = png_path.read_bytes()
    assert _png_size(data) == (640, 400) and len(data) > 2000  # scale 2: twice the pixels each way


@needs_backend
def test_analyze_exports_every_report_figure(tiny_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run.path, run_dir, ignore=shutil.ignore_patterns("analysis", "report.html"))
    out = tmp_path / "figures"
    assert main(["analyze", str(run_dir), "--no-progress", "--stride", "10", "--export-dir", str(out),
                 "--format", "svg"]) == 0
    expected = list(run_figures(Run(run_dir), replay(run_dir, stride=10, progress=False)))
    assert f"{len(expected)} figures written to {out} as svg" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{name}.svg" for name in expected)
    for name in expected:
        assert ET.parse(out / f"{name}.svg").getroot().tag == f"{SVG}svg", name


def test_missing_backend_is_a_clear_error(monkeypatch, tiny_run, tmp_path, capsys):
    monkeypatch.setattr(_export, "_has_kaleido", lambda: False)
    monkeypatch.setattr(_export, "find_chromium", lambda: None)
    with pytest.raises(ExportError, match=r"neither kaleido nor Chromium was found; install an image backend: "
                                          r"`pip install 'grokinterp\[export\]'`"):
        export_figure(_figure(), tmp_path / "fig.svg")
    with pytest.raises(ExportError, match="kaleido is not installed"):
        export_figures({"a": _figure()}, tmp_path, backend="kaleido")
    assert not (tmp_path / "fig.svg").exists()
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run.path, run_dir, ignore=shutil.ignore_patterns("analysis", "report.html"))
    assert main(["analyze", str(run_dir), "--export-dir", str(tmp_path / "figs")]) == 2
    assert "pip install 'grokinterp[export]'" in capsys.readouterr().err
    assert not (run_dir / "analysis").exists() and not (tmp_path / "figs").exists()  # failed before any work


def test_kaleido_is_preferred_when_installed(monkeypatch, tmp_path):
    calls = []

    def write_images(figs, files, format, width, height, scale):
        calls.append((len(figs), format, width, height, scale))
        for f in files:
            f.write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'/>")

    monkeypatch.setattr(_export, "_has_kaleido", lambda: True)
    monkeypatch.setattr("plotly.io.write_images", write_images)
    assert export_backend() == "kaleido"
    path = export_figure(_figure(), tmp_path / "k.svg", height=300)
    assert calls == [(1, "svg", [1000], [300], 1.0)] and path.read_bytes().startswith(b"<svg")
    # a kaleido that fails (e.g. finds no Chrome) is reported with what to do
    monkeypatch.setattr("plotly.io.write_images", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no chrome")))
    with pytest.raises(ExportError, match="kaleido could not export .*no chrome.*backend='chromium'"):
        export_figure(_figure(), tmp_path / "k2.svg")


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="cannot tell the image format"):
        export_figure(_figure(), tmp_path / "fig.pdf")
    with pytest.raises(ValueError, match="does not end in .png"):
        export_figure(_figure(), tmp_path / "fig.svg", format="png")
    with pytest.raises(ValueError, match="not safe file names"):
        export_figures({"../x": _figure()}, tmp_path)
    with pytest.raises(ValueError, match="backend='nope' is not valid"):
        export_backend("nope")


def test_stable_svg_ids_make_two_renders_of_one_figure_identical():
    from grokinterp.report._export import stable_svg_ids

    def render(defs: str, t1: str, t2: str, y: str = "1") -> bytes:
        return (f'<svg><defs id="defs-{defs}"><clipPath id="clip{defs}xyplot"/></defs>'
                f'<g class="trace scatter trace{t1}"><path d="M0,{y}"/></g><g class="trace scatter trace{t2}"/>'
                f'<g clip-path="url(#clip{defs}xyplot)"/></svg>').encode()

    a, b = stable_svg_ids(render("e83e48", "548b7c", "dba304")), stable_svg_ids(render("21ab83", "84b79e", "849fb0"))
    assert a == b and b"e83e48" not in a and b"548b7c" not in a
    assert b'class="trace scatter trace000000"' in a and b'class="trace scatter trace000001"' in a
    assert stable_svg_ids(render("e83e48", "548b7c", "dba304", y="2")) != a  # other content, other ids
