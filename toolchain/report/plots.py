"""Per-output evidence images (matplotlib, Agg, PNG as data: URIs): error histogram and reference-vs-artifact scatter."""
from __future__ import annotations

import base64
import io

import numpy as np

from ..errors import MissingDependencyError

MAX_POINTS = 4000  # a scatter of a million pixels says no more than a seeded sample of them


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise MissingDependencyError("stackc report draws its plots with matplotlib, which is not installed",
                                     hint="pip install 'stackc[report]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def output_plots(name: str, reference: np.ndarray, actual: np.ndarray) -> tuple[str, str]:
    """(histogram, scatter) of one output as ``data:image/png`` URIs."""
    plt = _pyplot()
    ref = np.asarray(reference, dtype=np.float64).ravel()
    act = np.asarray(actual, dtype=np.float64).ravel()
    finite = np.isfinite(ref) & np.isfinite(act)
    ref, act = ref[finite], act[finite]
    error = np.abs(act - ref)
    fig, ax = plt.subplots(figsize=(4.2, 3.0), dpi=90)
    ax.hist(error, bins=40, color="#3b6ea8", log=True)
    ax.set_xlabel("|artifact - reference|")
    ax.set_ylabel("values (log)")
    ax.set_title(f"{name}: error histogram", fontsize=10)
    histogram = _png(fig, plt)
    if ref.size > MAX_POINTS:
        pick = np.random.default_rng(0).choice(ref.size, MAX_POINTS, replace=False)
        ref, act = ref[pick], act[pick]
    fig, ax = plt.subplots(figsize=(4.2, 3.0), dpi=90)
    if ref.size:
        low, high = float(min(ref.min(), act.min())), float(max(ref.max(), act.max()))
        ax.plot([low, high], [low, high], color="#c62828", linewidth=0.8, zorder=1, label="artifact = reference")
    ax.scatter(ref, act, s=18 if ref.size < 500 else 4, alpha=0.6, color="#3b6ea8", linewidths=0, zorder=2)
    ax.set_xlabel("reference (source, ONNX Runtime fp32)")
    ax.set_ylabel("artifact")
    ax.set_title(f"{name}: reference vs artifact", fontsize=10)
    return histogram, _png(fig, plt)


def _png(fig, plt) -> str:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
