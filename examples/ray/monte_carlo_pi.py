# Estimate pi with Ray tasks: an unchanged Ray program.
#   python -m scaler.compat.ray examples/ray/monte_carlo_pi.py
import random
import time

import ray

ray.init()


@ray.remote
def sample(n, seed):
    rng = random.Random(seed)
    inside = 0
    for _ in range(n):
        x, y = rng.random(), rng.random()
        inside += x * x + y * y <= 1.0
    return inside


start = time.time()
batches, per_batch = 40, 50_000
counts = ray.get([sample.remote(per_batch, seed) for seed in range(batches)])
estimate = 4.0 * sum(counts) / (batches * per_batch)
print(f"pi ~ {estimate:.4f} from {batches * per_batch:,} samples in {time.time() - start:.2f}s")
assert abs(estimate - 3.14159) < 0.01
ray.shutdown()
