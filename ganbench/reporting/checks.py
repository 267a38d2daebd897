"""Checks, not leaderboards: a protocol whose ``report`` is "check" (smoke budgets, induced failures) publishes per
model whether it trained and whether its diagnosis said what it should, never a ranking. A model whose card lists
``expected_findings`` (the zoo's ``fail-*``) passes when every run's logged diagnosis names one of them; any other
model (the healthy references, every zoo model at a smoke budget) passes when every run finished with no
failure-level finding. The numbers of such a protocol are still on its page, unranked."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ganbench.core.errors import GanbenchError
from ganbench.core.track import Tracker
from ganbench.diagnosis.findings import Diagnosis
from ganbench.diagnosis.tracked import DIAGNOSIS_FILE
from ganbench.reporting.leaderboard import Board, is_healthy
from ganbench.spec.protocol import load_model, load_protocol


@dataclass(frozen=True)
class CheckRow:
    model: str
    runs: int
    expected: tuple[str, ...]  # findings the card says its diagnosis must name; () for a model expected healthy
    passed: int  # runs that did what the card expects
    outcome: str  # in words, per run

    @property
    def ok(self) -> bool:
        return self.runs > 0 and self.passed == self.runs

    @property
    def cells(self) -> list[str]:
        what = f"names {' or '.join(self.expected)}" if self.expected else "trains, healthy"
        return [self.model, what, f"{self.passed}/{self.runs}", self.outcome, "pass" if self.ok else "FAIL"]


CHECK_HEAD = ["model", "expected", "runs as expected", "what the runs did", "check"]


def is_check(protocol: str) -> bool:
    """Whether ``protocol`` (a name or file) publishes checks; a protocol file that cannot be loaded here (another
    machine's) is a leaderboard."""
    try:
        return load_protocol(protocol).report == "check"
    except GanbenchError:
        return False


def logged_diagnosis(tracker: Tracker, run_id: str, tmp: Path) -> Diagnosis | None:
    """A run's diagnosis as logged when it ended (``diagnosis.json``), or None when it logged none."""
    if DIAGNOSIS_FILE not in tracker.artifacts(run_id):
        return None
    return Diagnosis.from_dict(json.loads(tracker.download(run_id, DIAGNOSIS_FILE, tmp / run_id).read_text()))


def _expected(model: str) -> tuple[str, ...]:
    try:
        return load_model(model).expected_findings
    except GanbenchError:  # a card not on this machine: judged as a healthy model
        return ()


def check_rows(board: Board, tracker: Tracker, tmp: Path) -> list[CheckRow]:
    """One row per model of a check protocol's board, in model order."""
    rows = []
    for model, runs in sorted(board.runs.groupby("model"), key=lambda kv: str(kv[0])):
        expected, passed, said = _expected(str(model)), 0, []
        for _, run in runs.sort_values("seed").iterrows():
            diag = logged_diagnosis(tracker, run["run_id"], tmp)
            names = sorted({f.name for f in diag.findings}) if diag else []
            if expected:
                ok = any(n in expected for n in names)
            else:
                ok = is_healthy(run)
            passed += ok
            said.append(f"seed {run['seed']}: {run['status']}, " + (", ".join(names) if names else "no findings"))
        rows.append(CheckRow(str(model), len(runs), expected, passed, "; ".join(said)))
    return rows
