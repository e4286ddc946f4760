# Loaded into moto_server by the tests (support/mod.rs, `Moto::start`) before
# it starts: two places where moto's SQS model breaks promises real SQS keeps,
# so that the tests check the watcher, not moto.
#
# 1. Lost deletes. `Queue.delete_message` rebuilds the message list and swaps
#    it in without a lock; two deletes at once (moto serves each request on a
#    thread) each drop their message from the same old list, and the one
#    swapped in last brings the other's deleted message back — a duplicate,
#    seen a visibility timeout later. Here deletes (and adds) take one lock.
#
# 2. FIFO order. `receive_message` checks a message's group against the
#    groups in flight as it knew them when the call (or its long poll)
#    began, and refreshes that set halfway through the queue when it meets
#    a message whose visibility ran out; a group freed meanwhile then hands
#    out a later message after skipping earlier ones of the same group
#    (SQS never does: a group's messages go out in order). Here a FIFO
#    queue's long poll is a series of single passes, each under the lock
#    (so no delete lands halfway through one), and every answer is checked
#    against the queue: a message with an earlier one of its group still in
#    the queue and not in the same answer is put back, unreceived.
#
# Both use moto's internals (moto 5.2); the tests pin that version.

import threading
import time

from moto.sqs import models as _models

_lock = threading.RLock()

_delete = _models.Queue.delete_message
_add = _models.Queue.add_message


def _locked_delete(self, receipt_handle):
    with _lock:
        return _delete(self, receipt_handle)


def _locked_add(self, message):
    with _lock:
        return _add(self, message)


_models.Queue.delete_message = _locked_delete
_models.Queue.add_message = _locked_add

_receive = _models.SQSBackend.receive_message


def _in_group_order(queue, answer):
    """`answer` without the messages whose group has an earlier one still
    in the queue and not in `answer`; those are put back as they were."""
    given = {m.id for m in answer}
    blocked = set()
    for message in list(queue._messages):
        group = message.group_id
        if group is None:
            continue
        if message.id not in given:
            blocked.add(group)
        elif group in blocked:
            given.discard(message.id)
            queue.pending_messages.discard(message)
            message.approximate_receive_count -= 1
            if message.approximate_receive_count <= 0:
                message.approximate_first_receive_timestamp = None
            message.change_visibility(0)
    return [m for m in answer if m.id in given]


def _receive_in_order(
    self, queue_name, count, wait_seconds_timeout, visibility_timeout, *rest
):
    queue = self.get_queue(queue_name)
    if not queue.fifo_queue:
        return _receive(
            self, queue_name, count, wait_seconds_timeout, visibility_timeout, *rest
        )
    deadline = time.monotonic() + (wait_seconds_timeout or 0)
    while True:
        with _lock:
            answer = _receive(self, queue_name, count, 0, visibility_timeout, *rest)
            answer = _in_group_order(queue, answer)
        if answer or time.monotonic() >= deadline:
            return answer
        time.sleep(0.02)


_models.SQSBackend.receive_message = _receive_in_order
