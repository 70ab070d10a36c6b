"""Client mode: a driver with no node of its own, through a proxy on the head
(``core``: the driver's side, ``link``: its connection, ``proxy``: the head's side)."""
