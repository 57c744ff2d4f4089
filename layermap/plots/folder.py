"""Every figure of a folder (``layermap plot FOLDER``): a run folder's (:mod:`~layermap.plots.search`, or for an nsga2
run its front, :mod:`~layermap.plots.front`) or a compare folder's (:mod:`~layermap.plots.compare`).  Imports the
other ``plots`` modules and ``report.front`` (is a run an nsga2 run?)."""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import LayermapError
from .compare import plot_compare
from .search import plot_run

def plot_folder(folder: str | Path, out: str | Path | None = None, *, noise_std: float | None = None) -> list[Path]:
    """A run folder (``run.json``) or a compare folder (``comparison.json``) -> its figures (``noise_std``:
    see :func:`plot_run`; a compare folder's noise is in its table)."""
    import matplotlib

    matplotlib.use("Agg")
    folder = Path(folder)
    if (folder / "comparison.json").is_file():
        return plot_compare(folder, out)
    if (folder / "run.json").is_file():
        from ..report.front import is_nsga2_run

        if noise_std is not None and not (noise_std >= 0 and math.isfinite(noise_std)):
            raise LayermapError(f"--noise-std must be a standard deviation >= 0, got {noise_std}")

        if is_nsga2_run(folder):                    # a Pareto front, not one best genome
            from .front import plot_front

            return plot_front(folder, out)
        return plot_run(folder, out, noise_std=noise_std)
    raise LayermapError(f"{folder} is neither a run folder (run.json) nor a compare folder (comparison.json); "
                        "give the --out folder of 'layermap evolve' or 'layermap compare'")
