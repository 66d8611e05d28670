"""Property tests: generated clusters driven through generated sequences of observations.

A small simulated world plays the keepers (they apply their DB spec or lag behind, die,
come back, lose PostgreSQL, write WAL), the proxies (apply the proxy generation or not) and
stolonctl (failkeeper, toggling synchronous replication). After every cycle we check:

- decide never modifies its inputs, and is deterministic;
- there is never more than one master: ``cluster.status.master`` exists, proxies point at
  it or nowhere, no DB becomes master-type except an elected master, and once the master is
  healthy and converged every other master-type DB is gone;
- proxies are pointed only at a healthy master that reports its current generation (quirk 3);
- a new master was converged and reported healthy this cycle; in synchronous mode it is in
  the old master's known-in-sync set (quirk 4); asynchronously no eligible candidate had a
  higher xLogPos (quirk 1);
- a keeper holds at most one DB; generations never go down.

And: in a perfect world (everything alive and applying at once) decide reaches a fixed point
and stays there: only timestamps and memory change.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from stolon.model.cluster import ClusterData
from stolon.model.duration import Duration
from stolon.model.infos import KeeperInfo, PostgresState, ProxyInfo
from stolon.sentinel import Decision, Memory, Now, Observations, decide
from stolon.sentinel import events as ev
from stolon.sentinel.eligibility import MASTER_TYPE, Refusal, db_type, known_in_sync
from stolon.testing.sentinel_builders import CD, CLUSTER_UID, MASTER, NOW, comparable, pick_first, uids

# Kept small so the suite runs in seconds; raise max_examples locally to hunt (300+ pass).
SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
FIXED_POINT_SETTINGS = settings(SETTINGS, max_examples=15)


@dataclass
class KState:
    alive: bool = True
    pg_up: bool = True
    db: str = ""
    gen: int = 0
    xlog: int = 0
    n: int = 0


@dataclass
class World:
    keepers: dict[str, KState]
    proxies: dict[str, int] = field(default_factory=dict)  # alive proxies -> applied generation
    n: int = 0
    uids: int = 100

    def new_uid(self) -> str:
        self.uids += 1
        return f"db{self.uids}"

    def observe(self, cd: ClusterData, publishing: set[str]) -> Observations:
        infos: dict[str, KeeperInfo] = {}
        self.n += 1
        for uid, k in sorted(self.keepers.items()):
            if not k.alive or uid not in publishing:
                continue
            k.n += 1
            pg = None
            if k.db:
                pg = PostgresState(
                    uid=k.db,
                    generation=k.gen,
                    healthy=k.pg_up,
                    system_id="sys",
                    timeline_id=1,
                    xlog_pos=k.xlog,
                    synchronous_standbys=self._reported_sync(cd, k),
                )
            infos[uid] = KeeperInfo(
                info_uid=f"{uid}-{k.n}", uid=uid, cluster_uid=CLUSTER_UID, postgres_state=pg
            )
        proxies = {
            uid: ProxyInfo(info_uid=f"{uid}-{self.n}", uid=uid, generation=g, proxy_timeout_ns=15 * 10**9)
            for uid, g in self.proxies.items()
        }
        return Observations(keepers_info=infos, proxies_info=proxies)

    def _running(self, db_uid: str) -> KState | None:
        return next((k for k in self.keepers.values() if k.db == db_uid and k.alive and k.pg_up), None)

    def _reported_sync(self, cd: ClusterData, k: KState) -> list[str]:
        db = (cd.dbs or {}).get(k.db)
        if db is None or db.spec is None or db.spec.role != MASTER:
            return []
        return [u for u in db.spec.synchronous_standbys or [] if self._running(u) is not None]

    def apply(
        self, cd: ClusterData, applying: set[str], writes: int, streaming: set[str] | None = None
    ) -> None:
        """Keepers in ``applying`` converge to their DB spec; the master writes; standbys of
        keepers in ``streaming`` (default: all) catch up with it."""
        master_k: KState | None = None
        for uid, k in sorted(self.keepers.items()):
            if not k.alive or uid not in applying:
                continue
            db = cd.db_of_keeper(uid)
            if db is None:
                continue
            if k.db != db.uid:
                fc = db.spec.follow_config if db.spec else None
                leader = self._running(fc.dbuid if fc else "")
                k.xlog = leader.xlog if leader else k.xlog
            k.db, k.gen = db.uid, db.generation
        assert cd.cluster is not None
        master_k = self._running(cd.cluster.status.master)
        if master_k is not None:
            master_db = (cd.dbs or {}).get(master_k.db)
            if master_db is not None and master_db.spec is not None and master_db.spec.role == MASTER:
                master_k.xlog += writes
                for kuid, k in self.keepers.items():
                    d = (cd.dbs or {}).get(k.db)
                    fc = d.spec.follow_config if d is not None and d.spec is not None else None
                    if streaming is not None and kuid not in streaming:
                        continue
                    if k.alive and k.pg_up and fc is not None and fc.dbuid == master_k.db:
                        k.xlog = master_k.xlog

    def proxies_apply(self, cd: ClusterData, applying: set[str]) -> None:
        assert cd.proxy is not None
        for uid in applying & set(self.proxies):
            self.proxies[uid] = cd.proxy.generation


@st.composite
def clusters(draw: st.DrawFn) -> tuple[CD, World]:
    n = draw(st.integers(2, 4))
    sync = draw(st.integers(0, 2)) > 0
    b = CD(
        sleep_interval=Duration.parse("5s"),
        fail_interval=Duration.parse("8s"),
        convergence_timeout=Duration.parse("15s"),
        synchronous_replication=sync,
        min_synchronous_standbys=draw(st.integers(0, 1)),
        max_synchronous_standbys=draw(st.integers(1, 2)),
        max_standbys_per_sender=draw(st.integers(1, 3)),
    )
    world = World(keepers={})
    standbys: list[str] = []
    for i in range(1, n + 1):
        kuid = f"keeper{i}"
        b.keeper(kuid)
        kind = "master" if i == 1 else draw(st.sampled_from(["standby", "standby", "none", "oldmaster"]))
        gen = draw(st.integers(1, 3))
        cur = gen if draw(st.booleans()) else gen - 1
        xlog = draw(st.integers(0, 2000))
        if kind == "none":
            world.keepers[kuid] = KState()
            continue
        uid = f"db{i}"
        if kind == "standby":
            b.db(
                uid, kuid, follows="db1", generation=gen, current=cur, xlog=xlog, system_id="sys", timeline=1
            )
            standbys.append(uid)
        else:
            b.db(uid, kuid, role=MASTER, generation=gen, current=cur, xlog=xlog, system_id="sys", timeline=1)
        world.keepers[kuid] = KState(db=uid, gen=cur, xlog=xlog)
    b.master("db1").db("db1", followers=sorted(standbys))
    if sync:
        defined = draw(st.lists(st.sampled_from(standbys), unique=True)) if standbys else []
        in_sync = draw(st.lists(st.sampled_from(defined), unique=True)) if defined else []
        b.db("db1", sync=True, sync_standbys=sorted(defined), ext_sync=[], in_sync=in_sync)
    b.proxy(generation=draw(st.integers(0, 2)), master=draw(st.sampled_from(["", "db1"])))
    for i in range(draw(st.integers(0, 2))):
        world.proxies[f"proxy{i}"] = 0
    return b, world


def snapshot(cd: ClusterData, obs: Observations, mem: Memory) -> Any:
    return (
        cd.to_obj(),
        {u: i.to_obj() for u, i in obs.keepers_info.items()},
        {u: p.to_obj() for u, p in obs.proxies_info.items()},
        copy.deepcopy(mem),
    )


def master_types(cd: ClusterData) -> set[str]:
    return {uid for uid, db in (cd.dbs or {}).items() if db_type(db) == MASTER_TYPE}


def check_cycle(prev: ClusterData, obs: Observations, d: Decision) -> None:
    new = d.cluster_data
    assert new is not None, d.events
    assert prev.cluster is not None and new.cluster is not None
    assert new.dbs is not None and prev.dbs is not None and new.proxy is not None and prev.proxy is not None
    master = new.cluster.status.master
    prev_master = prev.cluster.status.master
    assert master in new.dbs
    # one master
    assert new.proxy.spec.master_db_uid in ("", master)
    assert master_types(new) <= master_types(prev) | {master}
    mdb = new.dbs[master]
    if (
        master == prev_master
        and mdb.status.healthy
        and mdb.status.current_generation == prev.dbs[master].generation
    ):
        assert master_types(new) == {master}, "old masters must be gone once the master is settled"
    # quirk 3
    if new.proxy.spec.master_db_uid and not prev.proxy.spec.master_db_uid:
        assert mdb.status.current_generation == prev.dbs[master].generation and mdb.status.healthy
    # elections
    if master != prev_master:
        old = prev.dbs[prev_master]
        info = next(
            (i for i in obs.keepers_info.values() if i.postgres_state and i.postgres_state.uid == master),
            None,
        )
        assert info is not None and info.postgres_state is not None and info.postgres_state.healthy
        assert info.postgres_state.generation == prev.dbs[master].generation
        assert old.spec is not None
        if old.spec.synchronous_replication:
            assert master in known_in_sync(old)
        (e,) = d.of(ev.MasterElected)
        eligible = [c for c in e.candidates if not c.refusals or c.refusals == (Refusal.OUTRANKED,)]
        assert max(c.xlog_pos for c in eligible) == new.dbs[master].status.xlog_pos
    # bookkeeping
    owners = [db.spec.keeper_uid for db in new.dbs.values() if db.spec is not None]
    assert len(owners) == len(set(owners))
    for uid, db in new.dbs.items():
        if uid in prev.dbs:
            assert db.generation >= prev.dbs[uid].generation
    assert new.proxy.generation >= prev.proxy.generation


def run_cycle(
    cd: ClusterData, obs: Observations, mem: Memory, now: Now, world: World, *, twice: bool = True
) -> Decision:
    before = snapshot(cd, obs, mem)
    uids = world.uids
    d = decide(cd, obs, mem, now, new_uid=world.new_uid, pick_index=lambda n: 0)
    after_uids = world.uids
    assert snapshot(cd, obs, mem) == before, "decide modified its inputs"
    if not twice:
        return d
    world.uids = uids
    again = decide(cd, obs, mem, now, new_uid=world.new_uid, pick_index=lambda n: 0)
    assert world.uids == after_uids
    assert again.cluster_data is not None and d.cluster_data is not None
    assert again.cluster_data.to_obj() == d.cluster_data.to_obj() and again.events == d.events
    assert again.memory == d.memory
    return d


ACTIONS = st.sampled_from(
    ["none", "none", "none", "kill", "kill_master", "revive", "pg_down", "pg_up", "failkeeper", "toggle_sync"]
)


def some(data: st.DataObject, items: list[str]) -> set[str]:
    """Usually all of ``items``, sometimes a random subset."""
    if data.draw(st.integers(0, 3)) > 0:
        return set(items)
    return set(data.draw(st.lists(st.sampled_from(items), unique=True))) if items else set()


@SETTINGS
@given(clusters(), st.data())
def test_invariants_hold_over_generated_histories(start: tuple[CD, World], data: st.DataObject) -> None:
    b, world = start
    cd = b.build()
    now = NOW
    mem = Memory.empty()
    keepers = sorted(world.keepers)
    first = True
    for _ in range(data.draw(st.integers(3, 12))):
        action = data.draw(ACTIONS)
        target = data.draw(st.sampled_from(keepers))
        if action == "kill_master":
            assert cd.cluster is not None and cd.dbs is not None and cd.dbs[cd.cluster.status.master].spec
            target = cd.dbs[cd.cluster.status.master].spec.keeper_uid  # type: ignore[union-attr]
            action = "kill"
        k = world.keepers[target]
        if action == "kill":
            k.alive = False
        elif action == "revive":
            k.alive = True
        elif action == "pg_down":
            k.pg_up = False
        elif action == "pg_up":
            k.pg_up = True
        elif action == "failkeeper":
            cd = cd.copy()
            assert cd.keepers is not None
            if target in cd.keepers:
                cd.keepers[target].status.force_fail = True
        elif action == "toggle_sync":
            cd = cd.copy()
            assert cd.cluster is not None and cd.cluster.spec is not None
            cd.cluster.spec.synchronous_replication = not cd.cluster.spec.synchronous_replication
        obs = world.observe(cd, some(data, keepers))
        if first:
            obs = Observations(obs.keepers_info, obs.proxies_info, first_run=True)
        d = run_cycle(cd, obs, mem, now, world)
        if not first:
            check_cycle(cd, obs, d)
        for kind in (
            ev.MasterElected,
            ev.NoEligibleMaster,
            ev.ProxiesPointed,
            ev.SyncStandbysChanged,
            ev.DBRemoved,
        ):
            if d.of(kind):
                event(kind.kind)
        if any(e.synchronous for e in d.of(ev.MasterElected)):
            event("synchronous election")
        for n in d.of(ev.NoEligibleMaster):
            event(
                f"no eligible ({'sync' if n.synchronous else 'async'}): "
                + ",".join(sorted({x for c in n.candidates for x in c.refusals}))
                + f" n={len(n.candidates)}"
            )
        first = False
        assert d.cluster_data is not None
        cd, mem = d.cluster_data, d.memory
        world.apply(cd, some(data, keepers), data.draw(st.integers(0, 500)), some(data, keepers))
        world.proxies_apply(cd, some(data, sorted(world.proxies)))
        now = now.after(data.draw(st.sampled_from([5.0, 5.0, 6.0, 25.0])))


@FIXED_POINT_SETTINGS
@given(clusters())
def test_a_perfect_world_reaches_a_fixed_point(start: tuple[CD, World]) -> None:
    b, world = start
    for k in world.keepers.values():
        k.xlog = 0
    cd = b.build()
    now, mem = NOW, Memory.empty()
    everyone = set(world.keepers)
    history: list[Any] = []
    reasons: list[tuple[ev.Event, ...]] = []
    for i in range(10):
        obs = world.observe(cd, everyone)
        if i == 0:
            obs = Observations(obs.keepers_info, obs.proxies_info, first_run=True)
        d = run_cycle(cd, obs, mem, now, world, twice=False)
        assert d.cluster_data is not None
        cd, mem = d.cluster_data, d.memory
        history.append(comparable(cd))
        reasons.append(d.events)
        world.apply(cd, everyone, 0)
        world.proxies_apply(cd, set(world.proxies))
        now = now.after(5)
    settled_at = max(i for i in range(len(history)) if i == 0 or history[i] != history[i - 1])
    event(f"fixed point after {settled_at} cycles")
    tail = history[-4:]
    assert all(h == tail[0] for h in tail), "no fixed point after 6 cycles"
    assert all(rs == () for rs in reasons[-3:]), reasons[-3:]
    final = cd
    assert final.dbs is not None and final.cluster is not None
    m = final.dbs[final.cluster.status.master]
    assert m.status.healthy and m.status.current_generation == m.generation
    standbys = [db for db in final.dbs.values() if db_type(db) != MASTER_TYPE]
    assert all(db.status.healthy and db.status.current_generation == db.generation for db in standbys)
    per_sender = b.cluster_spec().with_defaults().max_standbys_per_sender
    assert per_sender is not None and m.spec is not None
    # maxStandbysPerSender, except that synchronous standbys are never removed as excess
    assert min(per_sender, len(world.keepers) - 1) <= len(standbys)
    assert len(standbys) <= max(per_sender, len(m.spec.synchronous_standbys or []))
    assert final.proxy is not None and final.proxy.spec.master_db_uid == m.uid


def test_decide_rejects_cluster_data_without_cluster() -> None:
    import pytest

    with pytest.raises(ValueError):
        decide(
            ClusterData(cluster=None),
            Observations(),
            Memory.empty(),
            NOW,
            new_uid=uids(),
            pick_index=pick_first,
        )
