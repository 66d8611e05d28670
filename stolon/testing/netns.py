"""Network namespaces joined by a bridge, for partition tests on a loopback-only machine.

:class:`Bridge` creates, as root::

    root namespace:  bridge <prefix>br  10.213.<net>.1/24   (the store listens here)
                       |-- veth <prefix>0h  ==  eth0 10.213.<net>.10/24  in netns <prefix>-0
                       |-- veth <prefix>1h  ==  eth0 10.213.<net>.11/24  in netns <prefix>-1
                       ...

Traffic between namespaces is bridged (layer 2): no ``ip_forward``, no firewall rule, no
change to the root namespace beyond the bridge and the veth ends. :meth:`Bridge.partition`
takes a namespace's veth off the bridge: its frames go nowhere, in both directions, while
everything inside the namespace (its loopback, its own address) keeps working, like a
machine whose network cable was pulled; :meth:`Bridge.heal` puts it back.
:meth:`Bridge.cut` breaks only the links between some namespaces (a blackhole route to the
other side's address inside each of them: both directions dropped, everything else,
the root namespace included, still reachable), like a broken link between two racks;
:meth:`Bridge.mend` removes those routes.

:func:`in_netns` moves the *calling thread* into a namespace for the duration of a block
(``setns(2)`` is per thread): a socket opened there stays in that namespace afterwards, so a
client thread can connect "from the master's side" of a partition.

Names carry the creating process's id; :func:`remove_stale` removes what a killed run left.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
PREFIX = "stc"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and res.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {res.stderr.strip()}")
    return res


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def in_netns(name: str | None) -> Iterator[None]:
    """Run the block in network namespace ``name`` (this thread only); ``None``: no change."""
    if not name:
        yield
        return
    back = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(back)
    finally:
        os.close(back)


@dataclass
class Bridge:
    """``count`` namespaces on one bridge (see the module docstring). Use as a context
    manager, or call :meth:`create` then :meth:`remove` (safe to call twice)."""

    count: int
    tag: str = field(default_factory=lambda: str(os.getpid()))
    created: list[tuple[str, str]] = field(default_factory=list)  # (kind, name) to undo
    #: (from, to): a blackhole route to ``to``'s address inside namespace ``from``
    cuts: set[tuple[int, int]] = field(default_factory=set)

    @property
    def net(self) -> int:
        return 16 + int(self.tag) % 224

    @property
    def bridge(self) -> str:
        return f"{PREFIX}{self.tag}br"

    @property
    def host_address(self) -> str:
        """The root namespace's address on the bridge: reachable from every namespace."""
        return f"10.213.{self.net}.1"

    def namespace(self, i: int) -> str:
        return f"{PREFIX}-{self.tag}-{i}"

    def address(self, i: int) -> str:
        return f"10.213.{self.net}.{10 + i}"

    def veth(self, i: int) -> str:
        return f"{PREFIX}{self.tag}v{i}"

    def create(self) -> Bridge:
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            self.created.append(("link", self.bridge))
            _ip("addr", "add", f"{self.host_address}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i in range(self.count):
                ns, veth = self.namespace(i), self.veth(i)
                _ip("netns", "add", ns)
                self.created.append(("netns", ns))
                _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
                self.created.append(("link", veth))
                _ip("link", "set", veth, "master", self.bridge)
                _ip("link", "set", veth, "up")
                _ip("-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
                _ip("-n", ns, "link", "set", "eth0", "up")
                _ip("-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.remove()
            raise
        return self

    def partition(self, i: int) -> None:
        """Cut namespace ``i`` off: its veth leaves the bridge (frames dropped both ways)."""
        _ip("link", "set", self.veth(i), "nomaster")

    def heal(self, i: int) -> None:
        _ip("link", "set", self.veth(i), "master", self.bridge)

    def cut(self, i: int, others: list[int]) -> None:
        """Break the links between namespace ``i`` and each of ``others``, both ways: in
        ``i`` a blackhole route to each other's address, in each other one to ``i``'s.
        Packets between them are discarded by the sender's routing (a connect or a
        retransmission fails, nothing arrives); traffic with the root namespace and the
        rest of the bridge is untouched. Undone by :meth:`mend` (or :meth:`remove`)."""
        try:
            for j in others:
                if j == i:
                    raise ValueError(f"cut: namespace {i} cannot be cut from itself")
                for a, b in ((i, j), (j, i)):
                    if (a, b) not in self.cuts:
                        _ip("-n", self.namespace(a), "route", "add", "blackhole", f"{self.address(b)}/32")
                        self.cuts.add((a, b))
        except BaseException:
            self.mend()
            raise

    def mend(self) -> None:
        """Remove every route :meth:`cut` added (a route already gone is not an error)."""
        for a, b in sorted(self.cuts):
            _ip("-n", self.namespace(a), "route", "del", "blackhole", f"{self.address(b)}/32", check=False)
            self.cuts.discard((a, b))

    def remove(self) -> None:
        """Delete the veths (a namespace lingers while anything references it), the
        namespaces and the bridge. Processes must have been stopped first; any left in a
        namespace of ours are killed."""
        self.mend()
        for kind, name in reversed(self.created):
            if kind == "link":
                _ip("link", "del", name, check=False)
            else:
                _kill_netns_pids(name)
                _ip("netns", "del", name, check=False)
        self.created.clear()

    def __enter__(self) -> Bridge:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _kill_netns_pids(ns: str) -> None:
    res = _ip("netns", "pids", ns, check=False)
    for word in res.stdout.split():
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            os.kill(int(word), 9)


def remove_stale() -> list[str]:
    """Remove namespaces and links of ours whose creating process is gone."""
    removed: list[str] = []
    tags: set[str] = set()
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        parts = name.split("-")
        if len(parts) == 3 and parts[0] == PREFIX and parts[1].isdigit():
            tags.add(parts[1])
    for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
        fields = line.split(":")
        if len(fields) > 1:
            name = fields[1].strip().split("@")[0]
            if name.startswith(PREFIX) and name[len(PREFIX) :].split("v")[0].split("br")[0].isdigit():
                tags.add(name[len(PREFIX) :].split("v")[0].split("br")[0])
    for tag in tags:
        if tag == str(os.getpid()) or os.path.exists(f"/proc/{tag}"):
            continue
        stale = Bridge(0, tag=tag)
        for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
            fields = line.split(":")
            name = fields[1].strip().split("@")[0] if len(fields) > 1 else ""
            if name.startswith(f"{PREFIX}{tag}v"):
                _ip("link", "del", name, check=False)
                removed.append(name)
        for line in _ip("netns", "list", check=False).stdout.splitlines():
            name = line.split()[0] if line.strip() else ""
            if name.startswith(f"{PREFIX}-{tag}-"):
                _kill_netns_pids(name)
                _ip("netns", "del", name, check=False)
                removed.append(name)
        if _ip("link", "show", stale.bridge, check=False).returncode == 0:
            _ip("link", "del", stale.bridge, check=False)
            removed.append(stale.bridge)
    return removed
