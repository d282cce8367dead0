"""A cancelled exec probe is cancelled: the wait for the exec's thread never swallows the cancel,
even when the exec finishes at that very instant (asyncio.wait_for in 3.11 could), so stopping a
pod's probes never hangs."""

import asyncio
import random
import time

from kubelet_py.prober.execprobe import call_in_thread


def test_a_cancel_is_never_swallowed():
    async def main():
        swallowed = cancelled = 0
        for _ in range(1500):
            t = asyncio.create_task(call_in_thread(lambda: (time.sleep(0.0005), 0)[1], give_up=5.0))
            await asyncio.sleep(random.uniform(0, 0.002))
            if not t.cancel():
                continue  # it had finished: nothing to swallow
            try:
                await t
                swallowed += 1
            except asyncio.CancelledError:
                cancelled += 1
        return swallowed, cancelled
    swallowed, cancelled = asyncio.run(main())
    assert swallowed == 0 and cancelled > 100, (swallowed, cancelled)
