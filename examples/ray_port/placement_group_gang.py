"""A gang job on a placement group, written against Ray's documented API: only the
import line differs from the Ray program (``import ray``).

Four workers are reserved together (one bundle each, packed), take part in a few
rounds of an all-reduce through the driver, and a coordinator task started in the
group with ``placement_group_capture_child_tasks=True`` fans out helpers that land in
the same group. Then the group is removed and its resources come back.
"""

import nbcluster as ray

WORLD = 4

ray.init(num_cpus=WORLD + 1)

pg = ray.util.placement_group([{"CPU": 1}] * WORLD, strategy="PACK")
ray.get(pg.ready())
print("placement group ready:", ray.util.placement_group_table(pg)["state"])


@ray.remote(num_cpus=1)
class Worker:
    def __init__(self, rank, world):
        self.rank = rank
        self.world = world
        self.value = float(rank + 1)

    def contribute(self):
        return self.value

    def apply(self, total):
        self.value = total / self.world
        return self.value

    def group(self):
        return ray.util.get_current_placement_group().id.hex()


strategy = ray.util.scheduling_strategies.PlacementGroupSchedulingStrategy
workers = [
    Worker.options(scheduling_strategy=strategy(placement_group=pg, placement_group_bundle_index=rank)).remote(rank, WORLD)
    for rank in range(WORLD)
]
for step in range(3):
    total = sum(ray.get([w.contribute.remote() for w in workers]))
    values = ray.get([w.apply.remote(total) for w in workers])
    print(f"step {step}: sum {total:g}, every worker now holds {values[0]:g}")
assert {ray.get(w.group.remote()) for w in workers} == {pg.id.hex()}
for w in workers:
    ray.kill(w)


@ray.remote(num_cpus=0)
def helper(i):
    return i * i, ray.util.get_current_placement_group() is not None


@ray.remote(num_cpus=1)
def coordinator(n):
    return ray.get([helper.remote(i) for i in range(n)])


results = ray.get(
    coordinator.options(
        scheduling_strategy=strategy(placement_group=pg, placement_group_capture_child_tasks=True)
    ).remote(8)
)
print("helpers:", [square for square, _ in results], "all in the group:", all(inside for _, inside in results))

ray.util.remove_placement_group(pg)
print("removed; CPUs free again:", ray.available_resources().get("CPU"))
ray.shutdown()
