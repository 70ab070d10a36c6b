"""nbcluster in one minute: an embedded cluster, remote tasks, objects.

    python examples/quickstart.py
"""

import time

import nbcluster


@nbcluster.remote
def square(x: int) -> int:
    return x * x


@nbcluster.remote
def slow_sum(*values: int) -> int:
    time.sleep(0.1)
    print(f"summing {len(values)} values")  # appears here, prefixed "(slow_sum pid=...)"
    return sum(values)


@nbcluster.remote
def list_sum(values: list[int]) -> int:
    return sum(values)


def main() -> None:
    info = nbcluster.init(num_cpus=2)
    print(f"cluster: {nbcluster.cluster_resources()['CPU']:g} CPUs, session {info.session_dir}")

    squares = [square.remote(i) for i in range(10)]  # ObjectRefs, returned at once
    total = slow_sum.remote(*squares)  # refs passed as arguments are resolved first
    print("sum of squares:", nbcluster.get(total))

    data = nbcluster.put(list(range(1000)))  # store once, pass by reference
    print("sum of stored list:", nbcluster.get(list_sum.remote(data)))

    nbcluster.shutdown()  # also happens at exit


if __name__ == "__main__":
    main()
