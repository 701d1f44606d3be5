"""Following a study as it runs: ``hps study watch`` and ``hps study create --wait``.

A snapshot is one look at the study (progress, best value, the running trials and the epoch each has
reported); the watcher takes one every ``interval`` seconds until the study ends and shows it as a live
``rich`` view on a terminal, as one plain line per change elsewhere (logs, CI, tests), or as one JSON
object per line for scripts.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from hps.cli.view import ENDED_STATES, budget_of, finished_count, format_params, format_value
from hps.client.http import HpsClient
from hps.wire.studies import StudyOut


@dataclass(frozen=True)
class RunningTrial:
    """A running trial and how far it got: ``step`` is its latest reported step (the epoch), if any."""

    number: int
    step: int | None
    value: float | None
    params: dict[str, Any]


@dataclass(frozen=True)
class Mark:
    """A moment the watcher saw ``done`` trials finished: the pace is measured from here."""

    at: datetime
    done: int


@dataclass(frozen=True)
class Snapshot:
    """One look at a study. ``mark`` is the first look that saw a finished trial."""

    study: StudyOut
    running: list[RunningTrial]
    taken_at: datetime
    mark: Mark | None = None

    @property
    def done(self) -> int:
        """Trials finished (complete, pruned, diverged, failed for good)."""
        return finished_count(self.study)

    @property
    def total(self) -> int:
        """The trial budget."""
        return budget_of(self.study)

    @property
    def ended(self) -> bool:
        """Whether the study will hand out no more trials (completed, cancelled or failed)."""
        return self.study.state in ENDED_STATES

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the pace trials have finished at since the watcher first saw one finish; None
        until a further trial has finished, or once ended. The time before the first finish is left out:
        it holds the workers' one-off start (loading or pretraining a model), which the rest will not."""
        if self.ended or self.mark is None or self.done <= self.mark.done:
            return None
        seconds_each = (self.taken_at - self.mark.at).total_seconds() / (self.done - self.mark.done)
        return max(0.0, seconds_each * max(0, self.total - self.done))

    @property
    def eta_text(self) -> str:
        """The ETA for a person: ``h:mm:ss``, ``estimating`` until the pace is known, ``-`` once ended."""
        return "-" if self.ended else format_eta(self.eta_s)

    def to_json(self) -> dict[str, Any]:
        """The snapshot as plain data (``--output json``)."""
        best = self.study.best
        return {
            "id": self.study.id,
            "name": self.study.name,
            "state": self.study.state,
            "state_reason": self.study.state_reason,
            "done": self.done,
            "total": self.total,
            "eta_s": self.eta_s,
            "best": None if best is None else {"number": best.number, "value": best.value},
            "progress": self.study.progress.model_dump(),
            "running": [asdict(trial) for trial in self.running],
        }

    def line(self) -> str:
        """One plain line: what a log or a test reads."""
        best = format_value(self.study.best.value if self.study.best else None)
        running = ", ".join(f"#{t.number} epoch {'-' if t.step is None else t.step}" for t in self.running)
        return (
            f"study {self.study.id} {self.study.state}: {self.done}/{self.total} trials, "
            f"best {self.study.metric} {best}, ETA {self.eta_text}, "
            f"running {len(self.running)}" + (f" [{running}]" if running else "")
        )


class WatchFormat(StrEnum):
    """How the watcher shows snapshots."""

    live = "live"  # a rich live view (a terminal)
    lines = "lines"  # one plain line per change
    json = "json"  # one JSON object per line


def take_snapshot(hps: HpsClient, study_id: int, previous: Snapshot | None = None) -> Snapshot:
    """Read the study and its running trials now (``previous``: the last look, whose mark is kept)."""
    study = hps.get_study(study_id)
    running = [
        RunningTrial(
            number=trial.number,
            step=trial.intermediate_values[-1].step if trial.intermediate_values else None,
            value=trial.intermediate_values[-1].value if trial.intermediate_values else None,
            params=dict(trial.params),
        )
        for trial in hps.trials(study_id, state="running")
    ]
    now = datetime.now(UTC)
    mark = previous.mark if previous is not None else None
    if mark is None and finished_count(study) > 0:
        mark = Mark(now, finished_count(study))
    return Snapshot(study, running, now, mark)


def format_eta(seconds: float | None) -> str:
    """``h:mm:ss``, or ``estimating`` until the pace is known."""
    if seconds is None:
        return "estimating"
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def render(snapshot: Snapshot) -> RenderableType:
    """The live view: a progress bar with counts, ETA and best value, then the running trials."""
    study = snapshot.study
    head = Table.grid(padding=(0, 1))
    head.add_row(
        f"[bold]study {study.id}[/] [cyan]{study.name}[/] {study.state}",
        ProgressBar(total=max(snapshot.total, 1), completed=snapshot.done, width=30),
        f"{snapshot.done}/{snapshot.total} trials",
        f"ETA {snapshot.eta_text}",
        f"best {study.metric} {format_value(study.best.value if study.best else None)}",
    )
    if not snapshot.running:
        return head
    table = Table(title=f"running trials ({len(snapshot.running)})", title_justify="left")
    for column in ("trial", "epoch", study.metric, "params"):
        table.add_column(column, justify="left" if column == "params" else "right")
    for trial in snapshot.running:
        epoch = "-" if trial.step is None else str(trial.step)
        table.add_row(str(trial.number), epoch, format_value(trial.value), format_params(trial.params))
    return Group(head, table)


def watch(
    hps: HpsClient,
    study_id: int,
    console: Console,
    *,
    show: WatchFormat,
    interval: float = 1.0,
    once: bool = False,
) -> StudyOut:
    """Show snapshots of the study until it ends (or just one with ``once``); return the study as last
    seen. Lines and JSON are printed only when something changed, so a slow study does not flood logs."""
    snapshot = take_snapshot(hps, study_id)
    if once and show is not WatchFormat.json:
        console.print(render(snapshot))
        return snapshot.study
    if show is WatchFormat.live:
        with Live(render(snapshot), console=console, refresh_per_second=4) as live:
            while not snapshot.ended:
                time.sleep(interval)
                snapshot = take_snapshot(hps, study_id, snapshot)
                live.update(render(snapshot))
        return snapshot.study
    shown = _emit(snapshot, show, None)
    while not once and not snapshot.ended:
        time.sleep(interval)
        snapshot = take_snapshot(hps, study_id, snapshot)
        shown = _emit(snapshot, show, shown)
    return snapshot.study


def _emit(snapshot: Snapshot, show: WatchFormat, shown: str | None) -> str:
    """Print the snapshot unless it says what the last one said (ETA aside); return what it said."""
    data = snapshot.to_json()
    key = json.dumps({k: v for k, v in data.items() if k != "eta_s"}, sort_keys=True)
    if key != shown:
        print(json.dumps(data) if show is WatchFormat.json else snapshot.line(), flush=True)
    return key


def wait_until_ended(hps: HpsClient, study_id: int, interval: float = 1.0) -> StudyOut:
    """Poll the study quietly until it is completed, cancelled or failed; return it."""
    study = hps.get_study(study_id)
    while study.state not in ENDED_STATES:
        time.sleep(interval)
        study = hps.get_study(study_id)
    return study
