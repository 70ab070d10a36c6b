"""Objects: serialization, the shared-memory arena, its allocator, and a node's object store."""

