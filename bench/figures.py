"""The service benchmark's output: `say` (a progress line, flushed at once) and `Figures`,
the final table of every figure beside its baseline, ratio, target and verdict."""

from __future__ import annotations

from typing import Any


def say(msg: str) -> None:
    print(msg, flush=True)


class Figures:
    """The final table: one row per figure, its baseline, ratio, target and verdict."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        name: str,
        value: float,
        unit: str,
        baseline: float,
        baseline_name: str,
        target: float | None,
        op: str = ">=",
        detail: str = "",
    ) -> None:
        ratio = value / baseline if baseline > 0 else float("nan")
        met = None if target is None else (ratio >= target if op == ">=" else ratio <= target)
        self.rows.append(
            {
                "name": name,
                "value": value,
                "unit": unit,
                "baseline": baseline,
                "baseline_name": baseline_name,
                "ratio": ratio,
                "target": target,
                "op": op,
                "met": met,
                "detail": detail,
            }
        )
        t = "-" if target is None else f"{op} {target:g}x"
        say(
            f"  => {name}: {value:,.1f} {unit} vs {baseline_name} {baseline:,.1f} = {ratio:.3f}x"
            f" (target {t}: {'n/a' if met is None else 'MET' if met else 'NOT MET'})"
        )

    def table(self) -> str:
        head = ("figure", "value", "baseline", "ratio", "target", "met?")
        rows = [
            (
                r["name"],
                f"{r['value']:,.1f} {r['unit']}",
                f"{r['baseline']:,.1f} ({r['baseline_name']})",
                f"{r['ratio']:.3f}x",
                "-" if r["target"] is None else f"{r['op']} {r['target']:g}x",
                "n/a" if r["met"] is None else ("yes" if r["met"] else "NO"),
            )
            for r in self.rows
        ]
        w = [max(len(str(x[i])) for x in [head, *rows]) for i in range(len(head))]
        lines = ["  ".join(str(v).ljust(w[i]) for i, v in enumerate(head))]
        lines.append("  ".join("-" * n for n in w))
        lines += ["  ".join(str(v).ljust(w[i]) for i, v in enumerate(r)) for r in rows]
        return "\n".join(lines)
