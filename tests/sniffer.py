"""A packet sniffer on the test network's bridge (``tests/netns.py``), for proving what
crosses the wire between hosts in clear text.

It runs in the switch namespace with a raw ``AF_PACKET`` socket on the bridge's ports
(so it sees every frame between hosts, as a capture on a real switch would; frames the
bridge forwards do not pass through ``br0`` itself), follows each
TCP flow's payload, and reports which of the secret byte strings it was given
appeared in any flow, and how many payload bytes it saw in all. A needle split across
two segments of a flow is still found (each flow keeps the tail of what it saw).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .netns import Hosts

SCRIPT = r"""
import json, select, socket, struct, sys, time
needles = [bytes.fromhex(n) for n in json.loads(sys.stdin.readline())]
keep = max(len(n) for n in needles) - 1
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))  # every interface here
sock.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE (root): no drops in a burst
print("READY", flush=True)
tails, seen, total, frames = {}, set(), 0, 0
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:
    ready, _, _ = select.select([sock, sys.stdin], [], [], 0.2)
    if sys.stdin in ready and not sys.stdin.readline():
        break  # the test closed our stdin: stop
    if sock not in ready:
        continue
    frame, meta = sock.recvfrom(1 << 18)  # veth passes segments of up to 64 KiB (GSO) whole
    if meta[2] != socket.PACKET_OUTGOING:
        continue  # each frame once: as the bridge sends it out of a port
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        continue  # not IPv4
    ihl = (frame[14] & 0x0F) * 4
    if frame[23] != 6:
        continue  # not TCP
    ip = frame[14:]
    src, dst = ip[12:16], ip[16:20]
    tcp = ip[ihl:]
    sport, dport = struct.unpack("!HH", tcp[:4])
    offset = (tcp[12] >> 4) * 4
    length = struct.unpack("!H", ip[2:4])[0]
    payload = tcp[offset:length - ihl]
    if not payload:
        continue
    frames += 1
    total += len(payload)
    flow = (src, sport, dst, dport)
    data = tails.get(flow, b"") + payload
    for i, needle in enumerate(needles):
        if needle in data:
            seen.add(i)
    tails[flow] = data[-keep:] if keep else b""
print(json.dumps({"seen": sorted(seen), "bytes": total, "segments": frames}), flush=True)
"""


class Sniffer:
    """``with Sniffer(hosts, {"token": b"..."}) as s: ...`` then ``s.seen`` (the
    names of the needles that crossed the bridge in clear) and ``s.bytes``."""

    def __init__(self, hosts: Hosts, needles: dict[str, bytes], max_seconds: float = 300.0) -> None:
        self._hosts = hosts
        self._names = list(needles)
        self._needles = [needles[n].hex() for n in self._names]
        self._max = max_seconds
        self.seen: set[str] = set()
        self.bytes = 0
        self.segments = 0

    def __enter__(self) -> "Sniffer":
        self._proc = subprocess.Popen(
            ["ip", "netns", "exec", self._hosts.switch, sys.executable, "-c", SCRIPT, str(self._max)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(Path("/")),
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(self._needles) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if line.strip() != "READY":
            self._proc.kill()
            raise RuntimeError(f"the sniffer did not start: {line!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            out, _ = self._proc.communicate(timeout=60)  # closes its stdin: it reports and ends
        except subprocess.TimeoutExpired:
            self._proc.kill()
            out, _ = self._proc.communicate()
        if exc[0] is not None:
            return  # the workload failed: that error, not ours
        report = json.loads(out.strip().splitlines()[-1])
        self.seen = {self._names[i] for i in report["seen"]}
        self.bytes = report["bytes"]
        self.segments = report["segments"]
