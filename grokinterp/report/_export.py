"""Export figures to SVG or PNG for papers: one figure, a dict of them, or every figure of a run's report.

Two backends, chosen in this order by `backend="auto"`:
- kaleido (`pip install 'grokinterp[export]'`), through `plotly.io.write_image`;
- headless Chromium (`chromium`, `chromium-browser`, `google-chrome` on PATH, or the path in
  $GROKINTERP_CHROMIUM): the figures are drawn by the plotly.js bundled with plotly (offline) and
  turned into images by `Plotly.toImage`, all figures of one call in one browser start.
With neither, `ExportError` says what to install.

    export_figure(loss_curves(run), "figures/loss.svg")
    export_run_figures("checkpoints/quick", "figures", "png")
"""

from __future__ import annotations

import base64
import html
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import unquote

import plotly.graph_objects as go

from ..runs import atomic_write_bytes

FORMATS = ("svg", "png")
BACKENDS = ("auto", "kaleido", "chromium")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
DEFAULT_SIZE = (1000, 500)  # pixels, for figures whose layout sets no width/height
INSTALL_HINT = ("install an image backend: `pip install 'grokinterp[export]'` (kaleido), or Chromium "
                "(`apt-get install chromium`, or set GROKINTERP_CHROMIUM to a Chrome/Chromium executable)")


class ExportError(RuntimeError):
    """No image backend, or the backend failed; the message says what to install or what went wrong."""


def find_chromium() -> str | None:
    """A Chrome/Chromium executable: $GROKINTERP_CHROMIUM if set, else the first of CHROMIUM_NAMES on PATH."""
    env = os.environ.get("GROKINTERP_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _has_kaleido() -> bool:
    return importlib.util.find_spec("kaleido") is not None


def export_backend(backend: str = "auto") -> str:
    """The backend `backend` resolves to ("kaleido" or "chromium"); ExportError if it is not available."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not valid; choose one of {list(BACKENDS)}")
    if backend in ("auto", "kaleido") and _has_kaleido():
        return "kaleido"
    if backend in ("auto", "chromium") and find_chromium():
        return "chromium"
    wanted = "kaleido is not installed" if backend == "kaleido" else \
        "no Chromium found" if backend == "chromium" else "neither kaleido nor Chromium was found"
    raise ExportError(f"cannot export figures: {wanted}; {INSTALL_HINT}")


def _size(fig: go.Figure, width: int | None, height: int | None) -> tuple[int, int]:
    return (int(width or fig.layout.width or DEFAULT_SIZE[0]), int(height or fig.layout.height or DEFAULT_SIZE[1]))


def export_figures(figures: dict[str, go.Figure], out_dir: str | Path, format: str = "svg", width: int | None = None,
                   height: int | None = None, scale: float = 1.0, backend: str = "auto") -> list[Path]:
    """Write each figure to `<out_dir>/<id>.<format>` (atomically); returns the paths in order.

    Args:
        figures: {file stem: figure}, e.g. `run_figures(run, result)`.
        out_dir: created if missing.
        format: "svg" or "png".
        width, height: pixels (default: the figure's layout size, else 1000 x 500); scale: PNG resolution factor.
        backend: "auto" (kaleido, else Chromium), "kaleido" or "chromium".
    """
    if format not in FORMATS:
        raise ValueError(f"format={format!r} is not valid; choose one of {list(FORMATS)}")
    bad = [stem for stem in figures if not re.fullmatch(r"[A-Za-z0-9_.-]+", stem) or stem.startswith(".")]
    if bad:
        raise ValueError(f"figure ids {bad} are not safe file names (letters, digits, '_', '-', '.')")
    chosen = export_backend(backend)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if chosen == "kaleido":
        images = _kaleido_images(list(figures.values()), format, width, height, scale)
    else:
        images = _chromium_images(list(figures.values()), format, width, height, scale)
    if format == "svg":
        images = [stable_svg_ids(data) for data in images]
    paths = []
    for stem, data in zip(figures, images):
        path = out_dir / f"{stem}.{format}"
        atomic_write_bytes(path, data)
        paths.append(path)
    return paths


def stable_svg_ids(svg: bytes) -> bytes:
    """Replace plotly's random per-render ids (each trace's `traceXXXXXX` class, and the figure's 6 hex
    digits of `defs-XXXXXX`, reused in every clip-path id) by ids from the trace order and the content, so
    the same figure always writes the same bytes and a rebuilt page does not churn its committed SVGs."""
    import hashlib

    traces = dict.fromkeys(re.findall(rb"\btrace([0-9a-f]{6})\b", svg))
    for i, uid in enumerate(traces):
        svg = re.sub(rb"\btrace" + uid + rb"\b", b"trace%06x" % i, svg)
    match = re.search(rb'id="defs-([0-9a-f]{6})"', svg)
    if match is None:
        return svg
    uid = match.group(1)
    return svg.replace(uid, hashlib.sha256(svg.replace(uid, b"")).hexdigest()[:6].encode())


def export_figure(fig: go.Figure, path: str | Path, format: str | None = None, width: int | None = None,
                  height: int | None = None, scale: float = 1.0, backend: str = "auto") -> Path:
    """Write one figure to `path` as SVG or PNG (the format from the suffix unless given); returns the path."""
    path = Path(path)
    format = format or path.suffix.lstrip(".").lower()
    if format not in FORMATS:
        raise ValueError(f"cannot tell the image format of {path}: give it a .svg or .png suffix, or format=")
    if path.suffix.lstrip(".").lower() != format:
        raise ValueError(f"{path} does not end in .{format}")
    [written] = export_figures({path.stem: fig}, path.parent, format, width, height, scale, backend)
    return written


def export_run_figures(run, out_dir: str | Path, format: str = "svg", result=None, **kwargs) -> list[Path]:
    """Every figure of the run's report (`run_figures`) to `<out_dir>/<figure id>.<format>`.

    Args:
        run: a Run or its directory. result: its ReplayResult (default: replay the standard analyses,
            which reads the cache that `grokinterp analyze` filled).
        kwargs: `export_figures`'s width, height, scale, backend.
    """
    from ..analysis import replay
    from ..runs import Run
    from ._figures import run_figures

    run = run if isinstance(run, Run) else Run(run)
    export_backend(kwargs.get("backend", "auto"))  # before any replay: a missing backend fails at once
    result = replay(run, progress=False) if result is None else result
    return export_figures(run_figures(run, result), out_dir, format, **kwargs)


def _kaleido_images(figures: list[go.Figure], format: str, width: int | None, height: int | None,
                    scale: float) -> list[bytes]:
    """All figures through one kaleido session (`plotly.io.write_images`, into a temporary folder; it does not
    write to in-memory buffers)."""
    import plotly.io as pio

    sizes = [_size(fig, width, height) for fig in figures]
    with tempfile.TemporaryDirectory(prefix="grokinterp-export-") as tmp:
        files = [Path(tmp) / f"{i}.{format}" for i in range(len(figures))]
        try:
            pio.write_images(figures, files, format=format, width=[w for w, _ in sizes],
                             height=[h for _, h in sizes], scale=scale)
            return [f.read_bytes() for f in files]
        except Exception as e:  # kaleido needs a Chrome it can find; say so rather than fail deep inside it
            raise ExportError(f"kaleido could not export ({type(e).__name__}: {e}); kaleido 1.x needs Chrome "
                              "(`plotly_get_chrome`), or pass backend='chromium'") from e


_SCRIPT = """
(async () => {
  const specs = JSON.parse(document.getElementById('specs').textContent);
  for (const [i, spec] of specs.entries()) {
    const out = document.createElement('textarea');
    out.id = 'out-' + i;
    try {
      const gd = document.createElement('div');
      document.body.appendChild(gd);
      await Plotly.newPlot(gd, spec.figure.data, spec.figure.layout, {staticPlot: true});
      out.textContent = await Plotly.toImage(gd, {format: spec.format, width: spec.width, height: spec.height,
                                                  scale: spec.scale});
      Plotly.purge(gd);
      gd.remove();
    } catch (e) {
      out.textContent = 'error: ' + e;
    }
    document.body.appendChild(out);
  }
  document.body.appendChild(Object.assign(document.createElement('div'), {id: 'done'}));
})();
"""


def _chromium_images(figures: list[go.Figure], format: str, width: int | None, height: int | None,
                     scale: float) -> list[bytes]:
    """Render every figure in one headless Chromium (offline page, plotly.js inlined) and decode the images."""
    from plotly.offline import get_plotlyjs

    specs = [{"figure": json.loads(fig.to_json()), "format": format, "scale": scale,
              **dict(zip(("width", "height"), _size(fig, width, height)))} for fig in figures]
    payload = json.dumps(specs).replace("</", "<\\/")
    page = (f'<!DOCTYPE html><html><head><meta charset="utf-8"><script>{get_plotlyjs()}</script></head><body>'
            f'<script type="application/json" id="specs">{payload}</script><script>{_SCRIPT}</script></body></html>')
    with tempfile.TemporaryDirectory(prefix="grokinterp-export-") as tmp:
        page_path = Path(tmp) / "export.html"
        page_path.write_text(page, encoding="utf-8")
        cmd = [find_chromium() or "chromium", "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
               f"--user-data-dir={Path(tmp) / 'profile'}", f"--virtual-time-budget={20000 + 5000 * len(figures)}",
               "--dump-dom", page_path.as_uri()]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120 + 20 * len(figures))
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ExportError(f"headless Chromium failed to run ({e}); {INSTALL_HINT}") from e
    if done.returncode != 0 or 'id="done"' not in done.stdout:
        raise ExportError(f"headless Chromium did not finish the export (exit {done.returncode}): "
                          f"{done.stderr.strip()[-500:]}")
    images = []
    for i in range(len(figures)):
        match = re.search(rf'<textarea id="out-{i}">(.*?)</textarea>', done.stdout, flags=re.S)
        url = html.unescape(match.group(1)) if match else "error: no output"
        if url.startswith("data:image/svg+xml,"):
            images.append(unquote(url[len("data:image/svg+xml,"):]).encode("utf-8"))
        elif url.startswith("data:image/png;base64,"):
            images.append(base64.b64decode(url[len("data:image/png;base64,"):]))
        else:
            raise ExportError(f"headless Chromium could not draw figure {i} as {format}: {url[:300]}")
    return images
