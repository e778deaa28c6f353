"""A Towhee pipeline of one input row, run node after node in the calling thread.

Towhee runs every call of a pipeline as tasks of the pipeline's thread pool, one per node (the
input and output nodes included), and the caller waits for them: a search handed its image to
three threads and back. For one row that hand-over is all the pool does, since each node only
waits for the one before it. Run in order in the caller's thread, the same nodes, operators and
queues give the same answer for about 0.5 ms less CPU a call (README, Speed).

This reaches into ``towhee.runtime.runtime_pipeline`` (towhee 1.1.3, pinned): the graph Towhee
builds for each call, and the DAG it builds it from.
"""

from __future__ import annotations

from typing import Any

from towhee.runtime.data_queue import DataQueue
from towhee.runtime.runtime_pipeline import RuntimePipeline, _Graph
from towhee.runtime.time_profiler import TimeProfiler


class InThread:
    """Call a Towhee pipeline of map nodes on one row without its thread pool.

    A node reads its input queue until it is sealed, so a node can only run once every node
    before it has finished: that holds when the nodes form a chain, in the order the DAG lists
    them. Map nodes keep one row one row, so no queue fills up while nobody reads it. A failing
    node seals its outputs empty and the graph raises Towhee's RuntimeError, as a pooled call
    would.
    """

    def __init__(self, pipeline: RuntimePipeline) -> None:
        dag = pipeline._dag_repr
        self._nodes, self._edges = dag.nodes, dag.edges
        self._operators = pipeline._operator_pool
        names = list(self._nodes)
        if names[0] != "_input" or names[-1] != "_output":
            raise ValueError("the nodes must run from _input to _output")
        for before, after in zip(names, names[1:], strict=False):
            if self._nodes[before].out_edges != self._nodes[after].in_edges:
                raise ValueError(f"not a chain of nodes: {before} does not feed {after}")
        if kinds := {node.iter_info.type for node in self._nodes.values()} - {"map"}:
            raise ValueError(f"only map nodes keep one row one row, not {', '.join(sorted(kinds))}")

    def __call__(self, *inputs: Any) -> DataQueue:
        """Return the output queue, as calling the pipeline does."""
        graph = _Graph(self._nodes, self._edges, self._operators, None, TimeProfiler(False))
        try:
            graph._input_queue.put(inputs)
            graph._input_queue.seal()
            graph.features = []
            for node in graph._node_runners:
                node.process()
            return graph.result()
        finally:
            graph.release_op()
