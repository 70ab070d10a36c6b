"""A parameter server with an actor pool, written against Ray's documented API (the
"Parameter Server" example's shape, with numpy instead of a deep-learning framework):
only the import line differs from the Ray program (``import ray``).

A ``ParameterServer`` actor holds the weights of a linear model; ``DataWorker``
actors, each with its own shard of the data, compute gradients for the weights they
are given. Training runs synchronously (every worker's gradient each step) and then
asynchronously (``ray.wait``: the server applies whichever gradient is ready first).
An ``ActorPool`` of evaluators scores the model on held-out shards.
"""

import numpy as np

import nbcluster as ray

NUM_WORKERS = 2
DIM = 5
TRUE_WEIGHTS = np.arange(1, DIM + 1, dtype=np.float64)


def make_shard(seed, rows=200):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, DIM))
    y = x @ TRUE_WEIGHTS + rng.normal(scale=0.01, size=rows)
    return x, y


@ray.remote
class ParameterServer:
    def __init__(self, lr):
        self.weights = np.zeros(DIM)
        self.lr = lr
        self.updates = 0

    def apply_gradients(self, *gradients):
        self.weights -= self.lr * np.mean(gradients, axis=0)
        self.updates += 1
        return self.weights

    def get_weights(self):
        return self.weights

    def num_updates(self):
        return self.updates


@ray.remote
class DataWorker:
    def __init__(self, seed):
        self.x, self.y = make_shard(seed)

    def compute_gradients(self, weights):
        error = self.x @ weights - self.y
        return 2 * self.x.T @ error / len(self.y)


@ray.remote
class Evaluator:
    def loss(self, weights, seed):
        x, y = make_shard(seed, rows=100)
        return float(np.mean((x @ weights - y) ** 2))


ray.init(num_cpus=4)

pool = ray.util.ActorPool([Evaluator.remote() for _ in range(2)])


def evaluate(weights):
    return np.mean(list(pool.map(lambda actor, seed: actor.loss.remote(weights, seed), [100, 101, 102])))


ps = ParameterServer.remote(lr=0.1)
workers = [DataWorker.remote(seed) for seed in range(NUM_WORKERS)]

start_loss = evaluate(ray.get(ps.get_weights.remote()))
current_weights = ps.get_weights.remote()
for _ in range(30):
    gradients = [worker.compute_gradients.remote(current_weights) for worker in workers]
    current_weights = ps.apply_gradients.remote(*gradients)
sync_loss = evaluate(ray.get(current_weights))
print(f"synchronous: loss {start_loss:.1f} -> below 0.01: {sync_loss < 0.01}")

# Asynchronous: each worker's gradient is applied as soon as it is ready, and that
# worker goes on with the newest weights.
ps = ParameterServer.remote(lr=0.05)
current_weights = ps.get_weights.remote()
in_flight = {worker.compute_gradients.remote(current_weights): worker for worker in workers}
for _ in range(60):
    [ready], _ = ray.wait(list(in_flight), num_returns=1)
    worker = in_flight.pop(ready)
    current_weights = ps.apply_gradients.remote(ready)
    in_flight[worker.compute_gradients.remote(current_weights)] = worker
async_loss = evaluate(ray.get(current_weights))
print(f"asynchronous: {ray.get(ps.num_updates.remote())} updates, loss below 0.01: {async_loss < 0.01}")
print("weights:", np.round(ray.get(current_weights)).astype(int).tolist())

# The pool's other calls: submit/get_next in order, and unordered results.
for seed in (7, 8):
    pool.submit(lambda actor, s: actor.loss.remote(ray.get(current_weights), s), seed)
ordered = [pool.get_next() for _ in range(2)]
unordered = sorted(pool.map_unordered(lambda actor, s: actor.loss.remote(np.zeros(DIM), s), [1, 2, 3]))
print("pool:", len(ordered), "ordered,", len(unordered), "unordered, has_next:", pool.has_next())
ray.shutdown()
