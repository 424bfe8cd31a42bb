"""redis-py's Lock (Lua scripts for release/extend/reacquire) under
contention against Kora: many clients (threads) each increment a counter
under the lock with a non-atomic GET + SET; the final count is exact.
Run with the port of a server started with several workers (the lock and
the counters land on different shards)."""
import sys
import threading

import redis

port = int(sys.argv[1])
THREADS = 8
ROUNDS = 40


def client():
    return redis.Redis(host="127.0.0.1", port=port, decode_responses=True)


r = client()
r.delete("lock:counter", "counter", "counter:extended")
errors = []


def work():
    c = client()
    try:
        for _ in range(ROUNDS):
            lock = c.lock("lock:counter", timeout=10, blocking_timeout=30)
            assert lock.acquire(), "lock not acquired"
            try:
                value = int(c.get("counter") or 0)
                c.set("counter", value + 1)
                # extend() and reacquire() run their Lua scripts too.
                lock.extend(5)
                lock.reacquire()
                c.incr("counter:extended")
            finally:
                lock.release()
    except Exception as e:  # reported by the main thread
        errors.append(repr(e))


threads = [threading.Thread(target=work) for _ in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert not errors, errors
assert int(r.get("counter")) == THREADS * ROUNDS, r.get("counter")
assert int(r.get("counter:extended")) == THREADS * ROUNDS
# The lock is gone, and releasing a lock one does not own is refused by
# the release script.
assert r.get("lock:counter") is None
lock = r.lock("lock:counter", timeout=10)
assert lock.acquire(blocking=False)
other = r.lock("lock:counter", timeout=10)
other.local.token = b"not-the-owner"
try:
    other.release()
    raise AssertionError("releasing someone else's lock must fail")
except redis.exceptions.LockNotOwnedError:
    pass
lock.release()
print(f"{THREADS * ROUNDS} increments under redis-py Lock")
