# Word count as map-reduce with Ray tasks, plus an actor that aggregates progress.
#   python -m scaler.compat.ray examples/ray/map_reduce.py
import collections
import random
import zlib

import ray

ray.init()

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()
random.seed(7)
documents = [" ".join(random.choices(WORDS, k=2000)) for _ in range(64)]


@ray.remote
class Progress:
    def __init__(self):
        self.done = 0

    def report(self, n):
        self.done += n
        return self.done

    def total(self):
        return self.done


@ray.remote
def map_words(document, num_partitions, progress):
    partitions = [collections.Counter() for _ in range(num_partitions)]
    for word in document.split():
        partitions[zlib.crc32(word.encode()) % num_partitions][word] += 1
    progress.report.remote(1)
    return partitions


@ray.remote
def reduce_words(*partials):
    total = collections.Counter()
    for counts in partials:
        total.update(counts)
    return total


progress = Progress.remote()
num_partitions = 4
mapped = [map_words.options(num_returns=num_partitions).remote(doc, num_partitions, progress) for doc in documents]
reduced = [reduce_words.remote(*[m[i] for m in mapped]) for i in range(num_partitions)]
counts = collections.Counter()
for part in ray.get(reduced):
    counts.update(part)
print("documents mapped:", ray.get(progress.total.remote()))
print("most common:", counts.most_common(3))
assert sum(counts.values()) == 64 * 2000
ray.shutdown()
