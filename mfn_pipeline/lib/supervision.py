"""Supervision of this code location's runs: a run time limit on each, and dead runs failed.

Dagster 1.13 gives ad-hoc asset runs (Materialize in the UI, GraphQL launches,
backfills) no job tags, so ``dagster/max_runtime`` reaches only runs of jobs that
declare it. And a dead run worker is noticed only by the code server that started
it, while that server lives: run monitoring cannot check the health of the
DefaultRunLauncher's workers, and ``mfn build`` executes in its own process, which
no launcher watches. A SIGKILLed or OOM-killed run then stays STARTED, and with one
run at a time the queue never launches another.

So each run, in the process that executes it, records who that is (host, pid and
the process's start time, which tells a reused pid apart) and the environment's run
time limit as run tags; run monitoring enforces the limit, and
:func:`dead_run_sensor` fails STARTED runs whose worker on this host is gone.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dagster as dg
import psutil

if TYPE_CHECKING:
    from dagster._core.execution.context.system import PlanOrchestrationContext
    from dagster._core.execution.plan.plan import ExecutionPlan
    from dagster._core.execution.retries import RetryMode
    from dagster._core.execution.step_dependency_config import StepDependencyConfig

logger = logging.getLogger(__name__)

RUN_TIME_LIMIT_TAG = "dagster/max_runtime"
WORKER_HOST_TAG = "mfn/worker_host"
WORKER_PID_TAG = "mfn/worker_pid"
WORKER_STARTED_TAG = "mfn/worker_started"  # the process's start, seconds since the epoch
# The run the worker tags describe: a re-executed run inherits its parent's tags
# before its own worker replaces them, and must not be judged by the parent's worker.
WORKER_RUN_TAG = "mfn/worker_run"
# psutil derives a start time from clock ticks since boot; the same process reads
# the same value, a reused pid a later one.
START_TIME_TOLERANCE_S = 1.0
SENSOR_INTERVAL_S = 30

# How a run was started, one tag for every way: `mfn build` and the nightly build's
# sensor set it; a launch from the UI carries only Dagster's own FROM_UI_TAG, so the
# executor adds ours from it. (Dagster also marks nightly runs with
# dagster/from_automation_condition and the sensor's name.)
STARTED_BY_TAG = "mfn/started_by"
STARTED_BY_CLI, STARTED_BY_NIGHTLY, STARTED_BY_UI = "mfn build", "nightly", "ui"
FROM_UI_TAG = "dagster/from_ui"


@dataclass(frozen=True)
class Worker:
    """The process that executes a run: enough to tell later whether it still exists."""

    host: str
    pid: int
    started: float

    @classmethod
    def this_process(cls) -> Worker:
        process = psutil.Process()
        return cls(socket.gethostname(), process.pid, process.create_time())

    @classmethod
    def of(cls, run: dg.DagsterRun) -> Worker | None:
        """The run's recorded worker, or None if the run has none of its own."""
        tags = run.tags
        if tags.get(WORKER_RUN_TAG) != run.run_id:
            return None
        try:
            return cls(
                tags[WORKER_HOST_TAG], int(tags[WORKER_PID_TAG]), float(tags[WORKER_STARTED_TAG])
            )
        except (KeyError, ValueError):
            return None

    def tags(self, run_id: str) -> dict[str, str]:
        return {
            WORKER_HOST_TAG: self.host,
            WORKER_PID_TAG: str(self.pid),
            WORKER_STARTED_TAG: f"{self.started:.2f}",
            WORKER_RUN_TAG: run_id,
        }

    def is_gone(self) -> bool:
        """Whether no live process on this host is this worker (call on its host only)."""
        try:
            process = psutil.Process(self.pid)
            if abs(process.create_time() - self.started) > START_TIME_TOLERANCE_S:
                return True  # the pid was reused
            return process.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True
        except psutil.AccessDenied:
            return False  # it exists; another user's process cannot be ours to judge

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


def limited(tags: Mapping[str, str], limit_s: int) -> str:
    """The run time limit a run with ``tags`` gets: its own if smaller, else ``limit_s``.

    A launch may shorten its run's limit, never lengthen or remove it.
    """
    try:
        own = float(tags[RUN_TIME_LIMIT_TAG])
    except (KeyError, ValueError):
        return str(limit_s)
    return tags[RUN_TIME_LIMIT_TAG] if 0 < own <= limit_s else str(limit_s)


def supervision_tags(run_id: str, tags: Mapping[str, str], limit_s: int) -> dict[str, str]:
    """Tags that make the calling process the run's worker and bound the run's time.

    A run launched from the UI is also tagged as started there.
    """
    started = (
        {STARTED_BY_TAG: STARTED_BY_UI}
        if STARTED_BY_TAG not in tags and tags.get(FROM_UI_TAG) == "true"
        else {}
    )
    return {
        **Worker.this_process().tags(run_id),
        RUN_TIME_LIMIT_TAG: limited(tags, limit_s),
        **started,
    }


def in_process_run(limit_s: int, started_by: str) -> tuple[str, dict[str, str]]:
    """A run id and its tags for ``execute_in_process``, which no executor of ours sees."""
    run_id = str(uuid.uuid4())  # how Dagster names runs
    return run_id, {**supervision_tags(run_id, {}, limit_s), STARTED_BY_TAG: started_by}


class SupervisedExecutor(dg.Executor):
    """Runs another executor after tagging the run from the process that executes it."""

    def __init__(self, inner: dg.Executor, limit_s: int) -> None:
        self._inner = inner
        self._limit_s = limit_s

    @property
    def retries(self) -> RetryMode:
        return self._inner.retries

    @property
    def step_dependency_config(self) -> StepDependencyConfig:
        return self._inner.step_dependency_config

    def execute(
        self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan
    ) -> Iterator[dg.DagsterEvent]:
        run = plan_context.dagster_run
        plan_context.instance.add_run_tags(
            run.run_id, supervision_tags(run.run_id, run.tags, self._limit_s)
        )
        yield from self._inner.execute(plan_context, execution_plan)


def supervised(executor: dg.ExecutorDefinition, limit_s: int) -> dg.ExecutorDefinition:
    """``executor``, with every run it executes tagged by :class:`SupervisedExecutor`.

    Dagster calls an executor in the run worker for launched runs only;
    ``execute_in_process`` replaces it, so ``mfn build`` passes the same tags itself.
    """
    create = executor.executor_creation_fn
    if create is None:
        raise TypeError(f"executor {executor.name!r} has no creation function to supervise")

    def creation(context: dg.InitExecutorContext) -> dg.Executor:
        return SupervisedExecutor(create(context), limit_s)

    return dg.ExecutorDefinition(
        name=executor.name,
        config_schema=executor.config_schema.as_field(),
        requirements=executor.get_requirements,
        executor_creation_fn=creation,
        description=executor.description,
    )


def dead_runs(instance: dg.DagsterInstance) -> list[tuple[dg.DagsterRun, Worker]]:
    """STARTED runs whose worker on this host no longer exists (other hosts' runs are left)."""
    started = instance.get_runs(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.STARTED],
            tags={WORKER_HOST_TAG: socket.gethostname()},
        )
    )
    found = []
    for run in started:
        worker = Worker.of(run)
        if worker is not None and worker.is_gone():
            found.append((run, worker))
    return found


def fail_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Fail each dead run with a message saying what happened; the ids of those failed."""
    failed = []
    for run, worker in dead_runs(instance):
        current = instance.get_run_by_id(run.run_id)
        if current is None or current.status != dg.DagsterRunStatus.STARTED:
            continue  # it finished while we looked
        message = (
            f"The process executing this run ({worker.describe()}) no longer exists: it was "
            "killed (SIGKILL, out of memory) or crashed before it could report. Marked failed "
            "so queued runs can start; rerun it to rebuild its partition."
        )
        logger.warning("run %s: %s", run.run_id, message)
        instance.report_run_failed(current, message)
        failed.append(run.run_id)
    return failed


@dg.sensor(
    name="dead_run_sensor",
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Fails STARTED runs whose process on this host was killed or crashed, so the run "
        "queue moves on (SIGKILL, OOM kill, a restarted container)."
    ),
)
def dead_run_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    failed = fail_dead_runs(context.instance)
    if not failed:
        return dg.SkipReason("every STARTED run on this host has a live worker")
    return dg.SkipReason(f"failed {len(failed)} dead run(s): {', '.join(failed)}")
