# A Ray program on a local Scaler cluster that scaler_init() shapes (OpenGRIS Scaler's entry point).
#   python -m scaler.compat.ray examples/ray/ray_compat_local_cluster.py
# scaler_init(n_workers=...) comes before any other Ray call; with no address it starts a local
# cluster of that many one-cpu workers (default: one per CPU core) and returns once they joined.
# (python -m scaler.compat.ray --address tcp://... sets SCALER_ADDRESS, which takes its place.)
import ray

from scaler.compat.ray import scaler_init

scaler_init(n_workers=2)

# The Ray program goes on unchanged: its ray.init() joins the session scaler_init() started.
ray.init()


@ray.remote
def square(x):
    return x * x


@ray.remote
class Total:
    def __init__(self):
        self.value = 0

    def add(self, x):
        self.value += x
        return self.value


total = Total.remote()
squares = ray.get([square.remote(i) for i in range(100)])
for part in (squares[:50], squares[50:]):
    total.add.remote(sum(part))
print("nodes:", len(ray.nodes()), "resources:", ray.cluster_resources())
print("sum of squares:", ray.get(total.add.remote(0)))
assert ray.get(total.add.remote(0)) == sum(i * i for i in range(100))
ray.shutdown()
