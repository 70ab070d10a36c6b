"""Source snippets of driver programs that tests run in other processes."""

#: An actor class whose ``incr()`` returns its count, its pid and its node's id: the
#: same process with its state kept shows as the count going on with the same pid.
COUNTER_CLASS = """
@nbcluster.remote
class Counter:
    def __init__(self):
        self.n = 0
    def incr(self):
        self.n += 1
        return self.n, os.getpid(), nbcluster.get_runtime_context().get_node_id()
"""
