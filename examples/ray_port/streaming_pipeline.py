"""A streaming pipeline of generator tasks, written against Ray's documented API
("Ray Generators"): only the import line differs from the Ray program (``import ray``).

A reader task yields chunks of data as it makes them (``num_returns="streaming"``);
the driver hands each chunk to a transform task the moment its ref arrives, so the
stages overlap. ``ray.wait`` on the generator says whether its next item is ready; an
actor method generator streams running totals back; an error raised half-way through
a generator is raised at the item where it happened.
"""

import time

import numpy as np

import nbcluster as ray

ray.init(num_cpus=3)


@ray.remote(num_returns="streaming")
def read_chunks(num_chunks, rows):
    for i in range(num_chunks):
        time.sleep(0.05)  # reading takes a while: consumers start before it ends
        yield np.full(rows, i, dtype=np.int64)


@ray.remote
def transform(chunk):
    return int((chunk * 2).sum())


@ray.remote
class Aggregator:
    def __init__(self):
        self.total = 0

    def running_totals(self, values):
        for value in values:
            self.total += value
            yield self.total


# Stage 1 -> 2: transform each chunk as soon as the reader yields it.
gen = read_chunks.remote(6, 1000)
transformed = [transform.remote(chunk_ref) for chunk_ref in gen]
results = ray.get(transformed)
print("transformed:", results)

# ray.wait on a generator: is the next item ready?
gen = read_chunks.remote(3, 10)
seen = 0
while True:
    ready, _ = ray.wait([gen], timeout=5)
    if not ready:
        continue
    try:
        ref = next(gen)
    except StopIteration:
        break
    seen += int(ray.get(ref).sum() >= 0)
print("items taken after ray.wait:", seen)

# Stage 3: an actor method generator streams running totals.
aggregator = Aggregator.remote()
totals = [ray.get(ref) for ref in aggregator.running_totals.options(num_returns="streaming").remote(results)]
print("running totals:", totals)


# A generator function streams by default; its error comes at the item where it happened.
@ray.remote
def flaky(n):
    for i in range(n):
        if i == 2:
            raise ValueError(f"bad record {i}")
        yield i


good = []
for ref in flaky.remote(4):
    try:
        good.append(ray.get(ref))
    except ValueError as exc:
        print("items before the error:", good, "then:", "bad record 2" in str(exc))
        break
ray.shutdown()
