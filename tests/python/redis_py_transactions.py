"""redis-py transactions against Kora: `r.pipeline()` is MULTI/EXEC by
default, `r.transaction()` is the WATCH retry loop. Run with the port of a
server started with several workers, so keys live on different shards."""
import sys
import threading

import redis

port = int(sys.argv[1])


def client():
    return redis.Redis(host="127.0.0.1", port=port, decode_responses=True)


r = client()
r.flushall()

# Reply shapes: a MULTI/EXEC pipeline returns every command's reply; a
# runtime error is that command's reply and the rest still run.
pipe = r.pipeline()
pipe.set("tx:a", 1).incr("tx:a").get("tx:a").lpush("tx:a", "x").set("tx:b", "after")
try:
    pipe.execute()
    raise AssertionError("expected the WRONGTYPE inside EXEC to raise")
except redis.ResponseError as e:
    assert "WRONGTYPE" in str(e), e
assert r.get("tx:a") == "2" and r.get("tx:b") == "after"
pipe = r.pipeline(transaction=True)
assert pipe.set("tx:c", 5).incrby("tx:c", 2).mget("tx:a", "tx:c").execute() == [True, 7, ["2", "7"]]

# Concurrent transfers over many keys (both shards): the sum never changes,
# and a transactional read of all keys always sees the whole sum.
ACCOUNTS = [f"acct:{i}" for i in range(10)]
START = 1000
r.mset({k: START for k in ACCOUNTS})
TOTAL = START * len(ACCOUNTS)
errors = []


def mover(seed):
    c = client()
    x = seed
    try:
        for _ in range(300):
            x = (x * 1103515245 + 12345) % 2**31
            src, dst = ACCOUNTS[x % 10], ACCOUNTS[(x >> 8) % 10]
            amount = (x >> 16) % 40
            c.pipeline().decrby(src, amount).incrby(dst, amount).execute()
    except Exception as e:  # noqa: BLE001 - reported below
        errors.append(e)


threads = [threading.Thread(target=mover, args=(s,)) for s in range(4)]
for t in threads:
    t.start()
snapshots = 0
while any(t.is_alive() for t in threads):
    values = r.pipeline().mget(ACCOUNTS).execute()[0]
    assert sum(int(v) for v in values) == TOTAL, values
    snapshots += 1
for t in threads:
    t.join()
assert not errors, errors
assert sum(int(v) for v in r.mget(ACCOUNTS)) == TOTAL
assert snapshots > 5, snapshots

# WATCH-based optimistic increments from many clients end exact.
CLIENTS, EACH = 6, 50
r.set("ctr", 0)
aborts = []


def incrementer():
    c = client()
    retries = 0
    for _ in range(EACH):
        while True:
            try:
                with c.pipeline() as p:
                    p.watch("ctr")
                    value = int(p.get("ctr"))
                    p.multi()
                    p.set("ctr", value + 1)
                    p.execute()
                    break
            except redis.WatchError:
                retries += 1
    aborts.append(retries)


threads = [threading.Thread(target=incrementer) for _ in range(CLIENTS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert int(r.get("ctr")) == CLIENTS * EACH, r.get("ctr")

# r.transaction(): the helper redis-py documents for WATCH loops.
r.set("tx:x", 10)
r.set("tx:y", 0)


def move_all(p):
    x = int(p.get("tx:x"))
    p.multi()
    p.set("tx:x", 0)
    p.incrby("tx:y", x)


r.transaction(move_all, "tx:x", "tx:y")
assert (r.get("tx:x"), r.get("tx:y")) == ("0", "10")
print(f"redis-py transactions ok: {snapshots} snapshots, {sum(aborts)} WATCH retries")
