# A Ray program on a running Scaler scheduler: scaler_init(address=...) starts no local cluster.
#   scaler_scheduler tcp://127.0.0.1:6378 &  scaler_worker tcp://127.0.0.1:6378 -c cpu=2 &
#   python -m scaler.compat.ray examples/ray/ray_compat_remote_cluster.py tcp://127.0.0.1:6378
# The address is the first argument, else $SCALER_ADDRESS (python -m scaler.compat.ray --address
# sets it). With neither, this example starts a stand-in cluster of its own to play the remote one.
import os
import sys

import ray

from scaler import LocalCluster
from scaler.compat.ray import scaler_init

stand_in = None
address = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SCALER_ADDRESS")
if not address:
    stand_in = LocalCluster(n_workers=2)
    address = stand_in.address

scaler_init(address=address)


@ray.remote
def word_lengths(words):
    return {word: len(word) for word in words}


words = "the quick brown fox jumps over the lazy dog".split()
parts = ray.get([word_lengths.remote(words[i : i + 3]) for i in range(0, len(words), 3)])
lengths = {word: n for part in parts for word, n in part.items()}
print("scheduler:", address, "workers:", len(ray.nodes()))
print("longest word:", max(lengths, key=lengths.get))
assert lengths["quick"] == 5 and len(lengths) == 8
ray.shutdown()
if stand_in is not None:
    stand_in.shutdown()
