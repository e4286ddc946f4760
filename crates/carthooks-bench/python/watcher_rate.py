"""The Python SDK's watcher (carthooks 0.2.4) handling N change messages.

Prints `RESULT <n> <seconds from the first handled to the last>`; the SDK's own
banners go to stdout too. Environment: CARTHOOKS_API_URL (the fake server),
CARTHOOKS_TOKEN, AWS_ENDPOINT_URL / AWS_REGION / credentials (moto).
"""
import os
import sys
import time

from carthooks import Watcher

N = int(sys.argv[1])
QUEUE = sys.argv[2]
state = {"count": 0, "first": None}


def handler(ctx, message):
    now = time.monotonic()
    if state["first"] is None:
        state["first"] = now
    state["count"] += 1
    if state["count"] == N:
        # The delete of this last message happens after the handler returns:
        # wait for it, as the Rust side's stop waits for its acks.
        print(f"RESULT {N} {now - state['first']}", flush=True)
    return True


watcher = Watcher(token=os.environ["CARTHOOKS_TOKEN"], watcher_id="bench")
watcher.subscribe(handler=handler, app_id=1, collection_id=2, sqs_queue_url=QUEUE)
while state["count"] < N:
    watcher.sqs_listener.process_messages()
    time.sleep(0.1)  # what Watcher.run() sleeps per loop
