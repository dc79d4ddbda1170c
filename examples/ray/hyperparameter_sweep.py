# A hyper-parameter sweep with Ray: shared data via ray.put, results as they complete.
#   python -m scaler.compat.ray examples/ray/hyperparameter_sweep.py
import itertools

import numpy as np
import ray

ray.init()

rng = np.random.default_rng(0)
features = rng.normal(size=(5000, 20))
true_weights = rng.normal(size=20)
labels = features @ true_weights + rng.normal(scale=0.5, size=5000)
data_ref = ray.put((features, labels))


@ray.remote
def train(data, learning_rate, l2, epochs=40):
    x, y = data
    split = int(0.8 * len(x))
    w = np.zeros(x.shape[1])
    for _ in range(epochs):
        grad = x[:split].T @ (x[:split] @ w - y[:split]) / split + l2 * w
        w -= learning_rate * grad
    error = float(np.mean((x[split:] @ w - y[split:]) ** 2))
    return {"learning_rate": learning_rate, "l2": l2, "validation_mse": error}


grid = list(itertools.product([0.01, 0.05, 0.1, 0.3], [0.0, 0.01, 0.1]))
pending = [train.remote(data_ref, lr, l2) for lr, l2 in grid]
results = []
while pending:
    done, pending = ray.wait(pending, num_returns=min(3, len(pending)))
    results.extend(ray.get(done))
    print(f"{len(results)}/{len(grid)} trials done")

best = min(results, key=lambda r: r["validation_mse"])
print(f"best: learning_rate={best['learning_rate']} l2={best['l2']} mse={best['validation_mse']:.4f}")
assert best["validation_mse"] < 1.0
ray.shutdown()
