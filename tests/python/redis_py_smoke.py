"""redis-py against Kora: the calls an application makes on day one."""
import sys

import redis

port = int(sys.argv[1])
r = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)

assert r.ping() is True
assert r.flushall() is True
assert r.set("py:s", "v", ex=100) is True
assert r.get("py:s") == "v"
assert 0 < r.ttl("py:s") <= 100
assert r.incr("py:n") == 1 and r.incrby("py:n", 9) == 10
assert r.mset({"py:a": "1", "py:b": "2", "py:c": "3"}) is True
assert r.mget(["py:a", "py:b", "py:missing", "py:c"]) == ["1", "2", None, "3"]
assert r.delete("py:a", "py:b", "py:missing") == 2
assert r.rpush("py:l", "x", "y", "z") == 3 and r.lrange("py:l", 0, -1) == ["x", "y", "z"]
assert r.hset("py:h", mapping={"f1": "1", "f2": "2"}) == 2 and r.hgetall("py:h") == {"f1": "1", "f2": "2"}
assert r.sadd("py:set", "m1", "m2") == 2 and r.smembers("py:set") == {"m1", "m2"}
assert set(r.scan_iter("py:*")) == {"py:s", "py:n", "py:c", "py:l", "py:h", "py:set"}
try:
    r.lpush("py:s", "x")
    raise AssertionError("expected WRONGTYPE")
except redis.ResponseError as e:
    assert str(e).startswith("WRONGTYPE"), e
pipe = r.pipeline(transaction=False)
for i in range(1000):
    pipe.set(f"py:p:{i}", i)
assert all(pipe.execute())
assert r.dbsize() == 1006
info = r.info()
assert info["redis_version"] and "db0" in info and info["db0"]["keys"] == 1006
r.client_setname("smoke")
assert r.client_getname() == "smoke"
assert r.flushdb() is True and r.dbsize() == 0
print("redis-py smoke: ok")
