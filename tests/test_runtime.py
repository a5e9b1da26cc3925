"""The runtime without any chat platform: its scheduler runs jobs with the runtime, and stopping
lets a run in progress finish (an outbox pass cut in the middle would leave a row `sending`)."""

from __future__ import annotations

import asyncio

from bot.runtime import Runtime


class Recording:
    """A channel adapter that only records what happens to it."""

    name = "recording"

    def __init__(self) -> None:
        self.closed = False
        self.sent: list[str] = []

    async def open(self, runtime: Runtime) -> None:
        return None

    async def receive(self) -> None:
        return None

    async def close(self) -> None:
        self.closed = True

    async def send(self, address: str, text: str) -> None:
        if self.closed:
            raise ConnectionError("the channel is closed")
        self.sent.append(text)


async def test_stopping_waits_for_a_job_run_in_progress_and_its_sends_still_go_out(settings, db):
    runtime = Runtime(settings, db, on_startup=_nothing)
    channel = Recording()
    runtime.add(channel)
    steps: list[str] = []
    started, release = asyncio.Event(), asyncio.Event()

    async def job(rt: Runtime) -> None:
        assert rt is runtime
        steps.append("begun")
        started.set()
        await release.wait()
        await rt.channels["recording"].send("someone", "a reminder")  # the channels close after the jobs
        steps.append("finished")

    await runtime.start(startup=False)
    runtime.scheduler.once("slow", job, delay=0)
    await started.wait()
    stopping = asyncio.ensure_future(runtime.stop())
    await asyncio.sleep(0.05)
    assert not stopping.done() and steps == ["begun"]  # stop waits for the run
    release.set()
    await stopping
    assert steps == ["begun", "finished"] and channel.sent == ["a reminder"] and channel.closed


async def test_a_job_that_outlasts_the_grace_is_cut_short_and_stop_returns(settings, db):
    runtime = Runtime(settings, db, on_startup=_nothing)
    started = asyncio.Event()
    cut: list[bool] = []

    async def job(rt: Runtime) -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # never ends by itself
        except asyncio.CancelledError:
            cut.append(True)
            raise

    await runtime.start(startup=False)
    runtime.scheduler.once("stuck", job, delay=0)
    await started.wait()
    await runtime.scheduler.stop(grace=0.1)
    assert cut == [True]
    await runtime.stop()


async def _nothing(runtime: Runtime) -> None:
    return None
