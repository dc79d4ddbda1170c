# A Ray program that never calls ray.init first: the first remote call starts (or joins) the cluster,
# as in Ray; then shutdown, and init again in the same program.
import ray


@ray.remote
def plus_one(x):
    return x + 1


assert not ray.is_initialized()
assert ray.get(plus_one.remote(1)) == 2, "a remote call before ray.init initializes"
assert ray.is_initialized()
ray.shutdown()
assert not ray.is_initialized()

ray.init()
assert ray.is_initialized()
assert ray.get([plus_one.remote(i) for i in range(5)]) == [1, 2, 3, 4, 5], "ray.init works again after shutdown"
assert ray.get(ray.put("again")) == "again"
ray.shutdown()
assert not ray.is_initialized()
ray.init(ignore_reinit_error=True)
assert ray.get(plus_one.remote(41)) == 42
print("PASSED auto_init")
