"""The policy benchmark's table and plot (``benchmarks/policy.py``): drains in T, throughput over
the serial gate, each policy over both bounds, latencies and worker-minutes."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from pathlib import Path


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "drain in T (means over seeds); x ser = throughput over the serial gate's "
        "(serial drain / drain); /orc = oracle bound / drain; zuulE = Zuul with early failure",
        f"{'K':>5} {'W':>2} {'seeds':>5} {'serial':>7} {'gate':>7} {'zuul':>7} {'zuulE':>7} "
        f"{'oracle':>7} {'gate x ser':>10} {'zuul x ser':>10} {'zuulE x ser':>11} "
        f"{'gate/orc':>8} {'zuul/orc':>8} {'zuulE/orc':>9} {'gate<zuul':>9} {'gate<zuulE':>10}",
    ]
    for r in rows:
        d = r["drain_T"]
        lines.append(
            f"{r['patches']:>5} {r['workers']:>2} {r['seeds']:>5} {d['serial']:>7} {d['gate']:>7} "
            f"{d['zuul']:>7} {d['zuul_early']:>7} {d['oracle']:>7} {r['gate_over_serial']:>10} "
            f"{r['zuul_over_serial']:>10} {r['zuul_early_over_serial']:>11} "
            f"{r['gate_over_oracle']:>8} {r['zuul_over_oracle']:>8} "
            f"{r['zuul_early_over_oracle']:>9} {r['seeds_gate_slower_than_zuul']:>9} "
            f"{r['seeds_gate_slower_than_zuul_early']:>10}"
        )
    lines += [
        "",
        "mean approval-to-landing time in T, and worker-minutes per landed patch",
        f"{'K':>5} {'W':>2} {'serial':>7} {'gate':>7} {'zuul':>7} {'zuulE':>7} "
        f"{'wmin serial':>11} {'wmin gate':>9} {'wmin zuul':>9} {'wmin zuulE':>10}",
    ]
    for r in rows:
        t, m = r["mean_time_to_land_T"], r["worker_minutes_per_landed"]
        lines.append(
            f"{r['patches']:>5} {r['workers']:>2} {t['serial']:>7} {t['gate']:>7} {t['zuul']:>7} "
            f"{t['zuul_early']:>7} {m['serial']:>11} {m['gate']:>9} {m['zuul']:>9} "
            f"{m['zuul_early']:>10}"
        )
    lines += [
        "(gate<zuul, gate<zuulE: seeds on which the gate drained slower than that reference)",
        "",
        "/orcS = the bound for a policy that may stop a failing run at its failure / drain (the "
        "oracle above assumes whole runs)",
        f"{'K':>5} {'W':>2} {'orcS':>7} {'serial/orcS':>11} {'gate/orcS':>9} {'zuul/orcS':>9} "
        f"{'zuulE/orcS':>10}",
    ]
    for r in rows:
        lines.append(
            f"{r['patches']:>5} {r['workers']:>2} {r['drain_T']['oracle_stopped']:>7} "
            f"{r['serial_over_oracle_stopped']:>11} {r['gate_over_oracle_stopped']:>9} "
            f"{r['zuul_over_oracle_stopped']:>9} {r['zuul_early_over_oracle_stopped']:>10}"
        )
    return lines


def plot(rows: list[dict[str, Any]], out: Path) -> bool:
    """Throughput (patches drained per T) against W, one panel per K; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sizes = sorted({r["patches"] for r in rows})
    fig, axes = plt.subplots(1, len(sizes), figsize=(5.5 * len(sizes), 4.2), squeeze=False)
    for ax, k in zip(axes[0], sizes, strict=True):
        mine = [r for r in rows if r["patches"] == k]
        ws = [r["workers"] for r in mine]
        oracle = [k / r["drain_T"]["oracle"] for r in mine]
        ax.plot(ws, oracle, "k--", label="oracle bound (whole runs)")
        stopped = [k / r["drain_T"]["oracle_stopped"] for r in mine]
        ax.plot(ws, stopped, "k:", label="bound, runs stopped at a failure")
        for p, style in (("gate", "o-"), ("zuul", "s-"), ("zuul_early", "s:"), ("serial", "^-")):
            ax.plot(ws, [k / r["drain_T"][p] for r in mine], style, label=f"{p}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ws, [str(w) for w in ws])
        ax.set_xlabel("workers W (gate and Zuul window = W)")
        ax.set_ylabel("patches drained per T")
        ax.set_title(f"K = {k}, {mine[0]['seeds']} seeds, T = 1200 s, push 10 s")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return True
