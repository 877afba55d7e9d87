"""What a soak run's samples say (pure functions) and its plot (matplotlib)."""

from __future__ import annotations

from pathlib import Path


def slope_per_hour(samples: list[dict], key: str, skip_s: float = 0.0) -> float | None:
    """Least-squares slope of ``key`` against ``t`` (seconds), per hour, after ``skip_s``.

    None with fewer than three samples (a slope needs some spread).
    """
    pts = [(s["t"], s[key]) for s in samples if s["t"] >= skip_s and s.get(key) is not None]
    if len(pts) < 3:
        return None
    n = len(pts)
    mt = sum(t for t, _ in pts) / n
    mv = sum(v for _, v in pts) / n
    var = sum((t - mt) ** 2 for t, _ in pts)
    if var == 0:
        return None
    return 3600.0 * sum((t - mt) * (v - mv) for t, v in pts) / var


def window_account(expected: int, received: set[int], in_spool: set[int],
                   dropped: int) -> dict:
    """Every window seq 1..expected: received, still in the spool, counted as dropped, or lost."""
    missing = set(range(1, expected + 1)) - received - in_spool
    lost = max(0, len(missing) - dropped)
    return {"expected": expected, "received": len(received & set(range(1, expected + 1))),
            "in_spool": len(in_spool - received), "dropped_counted": dropped, "lost": lost,
            "unexpected": sorted(received - set(range(1, expected + 1)))[:20]}


def plot(result: dict, path: Path) -> None:
    """RSS, fds and threads, spool and loop over time, with the faults shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result["samples"]
    t = [x["t"] / 60 for x in s]
    fig, axes = plt.subplots(4, 1, figsize=(10, 11), sharex=True)
    panels = [
        (axes[0], [("rss_mb", "RSS (MB)")], "memory"),
        (axes[1], [("fds", "open fds"), ("threads", "threads")], "descriptors and threads"),
        (axes[2], [("spool_kb", "spool file (kB)"), ("spool_depth", "windows in spool")],
         "spool"),
        (axes[3], [("fps", "loop fps"), ("lag_s", "lag (s)")], "vision loop"),
    ]
    for ax, series, title in panels:
        for key, label in series:
            ax.plot(t, [x.get(key) for x in s], label=label)
        for a, b in result["faults"]["broker_down"]:
            ax.axvspan(a / 60, b / 60, color="tab:red", alpha=0.12)
        for a, b in result["faults"]["unplugged"]:
            ax.axvspan(a / 60, b / 60, color="tab:blue", alpha=0.12)
        ax.set_title(title, loc="left", fontsize=10)
        ax.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("minutes (red: broker down, blue: source unplugged)")
    w, sl = result["windows"], result["slopes"]
    fig.suptitle(f"soak {result['duration_s'] / 3600:.2f} h, {result['date']}: "
                 f"{w['received']}/{w['expected']} windows received, {w['lost']} lost; "
                 f"RSS {sl['rss_mb_per_h']} MB/h, fds {sl['fds_per_h']}/h", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
