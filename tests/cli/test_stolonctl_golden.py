"""Golden output of stolonctl against Go Stolon's code paths (issue 15, item 4).

Each expected byte string is derived by hand from the Go code named in the test's
docstring (github.com/sorintlab/stolon, cmd/stolonctl/cmd/*.go, internal/cluster), with
Go's ``text/tabwriter`` and ``encoding/json`` rules; stolonctl runs in-process against a
real embedded store.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from stolon.cli import stolonctl
from stolon.cli.tabwriter import TabWriter
from stolon.model import DB, Cluster, ClusterData, ClusterSpec, DBSpec, DBStatus, Keeper, KeeperStatus
from stolon.model.cluster import PHASE_NORMAL, FollowConfig
from stolon.model.infos import ProxyInfo, SentinelInfo
from stolon.plugins import load_plugins
from stolon.store import open_store
from stolon.store.base import StoreConfig

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()

Run = Callable[..., tuple[int, str, str]]


def three_keepers(spec: dict[str, object] | None = None) -> ClusterData:
    """db1 master on keeper1 (10.0.0.1:5432), db2 and db3 its standbys; db3 not healthy."""
    cd = ClusterData.new(Cluster.new(ClusterSpec.from_obj(spec or {"initMode": "new"})))
    assert cd.cluster is not None
    cd.cluster.status.phase = PHASE_NORMAL
    cd.cluster.status.master = "db1"
    cd.keepers = {
        k: Keeper(uid=k, status=KeeperStatus(healthy=True)) for k in ("keeper1", "keeper2", "keeper3")
    }
    cd.dbs = {}
    for n in (1, 2, 3):
        role = "master" if n == 1 else "standby"
        cd.dbs[f"db{n}"] = DB(
            uid=f"db{n}",
            generation=2,
            spec=DBSpec(
                keeper_uid=f"keeper{n}",
                role=role,
                follow_config=FollowConfig(type="internal", dbuid="db1") if n > 1 else None,
                followers=["db2", "db3"] if n == 1 else [],
            ),
            status=DBStatus(healthy=n != 3, current_generation=2, listen_address=f"10.0.0.{n}", port="5432"),
        )
    return cd


@pytest.fixture
def run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    config = StoreConfig(backend="embedded", cluster_name="c1", endpoints=(str(tmp_path / "store.db"),))

    def run(
        *args: str, cd: ClusterData | bytes | None = None, setup: Callable[..., None] | None = None
    ) -> tuple[int, str, str]:
        with open_store(config, PLUGINS) as st:
            if isinstance(cd, bytes):
                st.backend.put_cluster_data(cd)
            elif cd is not None:
                st.put_cluster_data(cd)
            if setup is not None:
                setup(st)
        capsys.readouterr()
        flags = [
            "--cluster-name",
            "c1",
            "--store-backend",
            "embedded",
            "--store-endpoints",
            config.endpoints[0],
        ]
        code = stolonctl.main([*flags, *args], PLUGINS)
        out, err = capsys.readouterr()
        return code, out, err

    return run


# -- status -----------------------------------------------------------------------------------
def test_status_text_is_gos_byte_for_byte(run: Run) -> None:
    """Go: cmd/stolonctl/cmd/status.go renderText and printTree. ``tabwriter.Writer.Init(os.Stdout,
    0, 8, 1, '\\t', 0)``; the keeper header is written, then each row ``"%s\\t%t\\t%s\\t%t\\t%d\\t%d\\t\\n"``
    followed by ``Flush()``. So the header and keeper1's row form one column block: column 2
    is 17 wide (16 + padding 1) and rounds up to 24, so ``10.0.0.1:5432`` (13) takes two tabs,
    ``true`` under ``PG HEALTHY`` (block width 11 -> 16) two, ``2`` under ``PG WANTEDGENERATION``
    (20 -> 24) three; the header's last cell is not tab-terminated, so it is not in a column.
    keeper2's and keeper3's rows are flushed alone: every cell is padded to the next multiple
    of 8 with one tab, and the row ends with the tab after the last number."""
    code, out, err = run("status", cd=three_keepers())
    assert (code, err) == (0, "")
    assert out == (
        "=== Active sentinels ===\n"
        "\n"
        "No active sentinels\n"
        "\n"
        "=== Active proxies ===\n"
        "\n"
        "No active proxies\n"
        "\n"
        "=== Keepers ===\n"
        "\n"
        "UID\tHEALTHY\tPG LISTENADDRESS\tPG HEALTHY\tPG WANTEDGENERATION\tPG CURRENTGENERATION\n"
        "keeper1\ttrue\t10.0.0.1:5432\t\ttrue\t\t2\t\t\t2\t\n"
        "keeper2\ttrue\t10.0.0.2:5432\ttrue\t2\t2\t\n"
        "keeper3\ttrue\t10.0.0.3:5432\tfalse\t2\t2\t\n"
        "\n"
        "=== Cluster Info ===\n"
        "\n"
        "Master Keeper: keeper1\n"
        "\n"
        "===== Keepers/DB tree =====\n"
        "\n"
        "keeper1 (master)\n"
        "├─keeper2\n"
        "└─keeper3\n"
        "\n"
    )


def test_status_text_sentinels_and_proxies(run: Run) -> None:
    """Go: renderText's sentinel table (``"ID\\tLEADER\\n"``, then ``"%s\\t%t\\n"`` and ``Flush()``
    per sentinel, sorted by UID) and proxy table (``"ID\\n"``, then ``"%s\\n"`` per proxy: one
    cell per line, nothing to align). The header and the first sentinel are one block:
    ``sentinel_one`` (12) + 1 -> 16, so ``ID`` takes two tabs; the second sentinel, alone,
    13 + 1 -> 16: one tab. No leader elected: every LEADER is false."""

    def infos(st: object) -> None:
        for uid in ("sentinel_one", "sentinel_three"):
            st.put_sentinel_info(SentinelInfo(uid=uid), ttl=60)  # type: ignore[attr-defined]
        st.put_proxy_info(ProxyInfo(uid="p1", info_uid="i1", generation=1), ttl=60)  # type: ignore[attr-defined]

    code, out, err = run("status", cd=three_keepers(), setup=infos)
    assert (code, err) == (0, "")
    assert out.startswith(
        "=== Active sentinels ===\n"
        "\n"
        "ID\t\tLEADER\n"
        "sentinel_one\tfalse\n"
        "sentinel_three\tfalse\n"
        "\n"
        "=== Active proxies ===\n"
        "\n"
        "ID\n"
        "p1\n"
        "\n"
        "=== Keepers ===\n"
    )


def test_status_json_is_gos_marshal_indent(run: Run) -> None:
    """Go: status.go renderJSON -> ``json.MarshalIndent(status, "", "\\t")`` of the Status
    struct (sentinels, proxies, keepers, cluster in that order, empty slices as ``[]``),
    printed with a newline. Ours (warnings, switchover, ...) follow Go's keys."""
    code, out, _ = run("status", "-f", "json", cd=three_keepers())
    assert code == 0
    assert out.startswith(
        '{\n\t"sentinels": [],\n\t"proxies": [],\n\t"keepers": [\n\t\t{\n\t\t\t"uid": "keeper1",\n'
        '\t\t\t"listen_address": "10.0.0.1:5432",\n\t\t\t"healthy": true,\n\t\t\t"pg_healthy": true,\n'
        '\t\t\t"pg_wanted_generation": 2,\n\t\t\t"pg_current_generation": 2\n\t\t},\n'
    )
    assert '\t"cluster": {\n\t\t"available": true,\n\t\t"master_keeper_uid": "keeper1",\n' in out


def test_status_json_escapes_like_go(run: Run) -> None:
    """Go: marshalJSON -> ``json.MarshalIndent`` (HTML-safe): ``<``, ``>``, ``&`` in a proxy
    UID are written ``\\u003c``, ``\\u003e``, ``\\u0026``."""

    def infos(st: object) -> None:
        st.put_proxy_info(ProxyInfo(uid="p<1>&", info_uid="i1", generation=1), ttl=60)  # type: ignore[attr-defined]

    code, out, _ = run("status", "-f", "json", cd=three_keepers(), setup=infos)
    assert code == 0
    assert (
        '\t"proxies": [\n\t\t{\n\t\t\t"uid": "p\\u003c1\\u003e\\u0026",\n\t\t\t"generation": 1\n\t\t}\n\t],\n'
        in out
    )
    assert json.loads(out)["proxies"][0]["uid"] == "p<1>&"


# -- the tabwriter itself ----------------------------------------------------------------------
def tabwrite(text: str, flush_every: str | None = None) -> str:
    buf = io.StringIO()
    tw = TabWriter(buf.write, 0, 8, 1, "\t")
    for part in text.split(flush_every) if flush_every else [text]:
        tw.write(part + (flush_every or ""))
        if flush_every:
            tw.flush()
    tw.flush()
    return buf.getvalue()


def test_tabwriter_follows_gos_column_blocks() -> None:
    """Go: text/tabwriter format(): a column block is a run of consecutive lines with a cell
    in that column; a line with fewer cells ends the block, and the lines after it start a
    new one with its own width (Go's package example ``aaaa|bbb|d`` ... shows this)."""
    assert tabwrite("a\tb\tc\naa\tbbbbbbbbbbb\tc\nx\naaaaaaaaaaa\tb\n") == (
        "a\tb\t\tc\naa\tbbbbbbbbbbb\tc\nx\naaaaaaaaaaa\tb\n"
    )
    # a cell in progress at Flush ends the last line without a newline; an empty cell is padded
    assert tabwrite("\tx\ny") == "\tx\ny"
    # space padding: up to the block width, no rounding
    buf = io.StringIO()
    tw = TabWriter(buf.write, 0, 8, 1, " ")
    tw.write("a\tbbb\tc\nxx\ty\t\n")
    tw.flush()
    assert buf.getvalue() == "a  bbb c\nxx y   \n"


# -- spec -------------------------------------------------------------------------------------
GO_DEFAULTS_OF_INIT_NEW = (
    "{\n"
    '\t"sleepInterval": "5s",\n'
    '\t"requestTimeout": "10s",\n'
    '\t"convergenceTimeout": "30s",\n'
    '\t"initTimeout": "5m0s",\n'
    '\t"syncTimeout": "0s",\n'
    '\t"dbWaitReadyTimeout": "1m0s",\n'
    '\t"failInterval": "20s",\n'
    '\t"deadKeeperRemovalInterval": "48h0m0s",\n'
    '\t"proxyCheckInterval": "5s",\n'
    '\t"proxyTimeout": "15s",\n'
    '\t"maxStandbys": 20,\n'
    '\t"maxStandbysPerSender": 3,\n'
    '\t"maxStandbyLag": 1232896,\n'
    '\t"synchronousReplication": false,\n'
    '\t"minSynchronousStandbys": 1,\n'
    '\t"maxSynchronousStandbys": 1,\n'
    '\t"additionalWalSenders": 5,\n'
    '\t"additionalMasterReplicationSlots": null,\n'
    '\t"usePgrewind": false,\n'
    '\t"initMode": "new",\n'
    '\t"mergePgParameters": true,\n'
    '\t"role": "master",\n'
    '\t"newConfig": null,\n'
    '\t"pitrConfig": null,\n'
    '\t"existingConfig": null,\n'
    '\t"standbyConfig": null,\n'
    '\t"defaultSUReplAccessMode": "all",\n'
    '\t"pgParameters": null,\n'
    '\t"pgHBA": null,\n'
    '\t"automaticPgRestart": false\n'
    "}\n"
)


def test_spec_defaults_is_gos_cluster_spec_defaults(run: Run) -> None:
    """Go: cmd/stolonctl/cmd/spec.go: ``--defaults`` marshals ``(*ClusterSpecDefaults)(
    cd.Cluster.DefSpec())`` with ``json.MarshalIndent(cs, "", "\\t")``: the 30 fields of
    ClusterSpecDefaults in declaration order, none omitempty, so unset pointers and nil
    slices/maps are ``null``; defaults from internal/cluster/cluster.go WithDefaults
    (``DefaultMaxStandbyLag = 1024 * 1204``, ``DefaultDBWaitReadyTimeout`` 60s printed by
    Go's Duration as ``1m0s``, ...). Keys of ours (fencing, backup, selfFencingTimeout)
    are not printed when unset."""
    cd = three_keepers()
    code, out, err = run("spec", "--defaults", cd=cd)
    assert (code, err) == (0, "")
    assert out == GO_DEFAULTS_OF_INIT_NEW


def test_spec_leaves_out_what_go_omits(run: Run) -> None:
    """Go: spec.go marshals ``(*ClusterSpecNoDefaults)(cd.Cluster.Spec)``, whose fields are
    all omitempty: nil pointers, and empty slices and maps (``pgHBA: []``,
    ``additionalMasterReplicationSlots: []``, ``pgParameters: {}``) are left out, though the
    stored ClusterSpec writes pgHBA, additionalMasterReplicationSlots, additionalWalSenders
    and automaticPgRestart even when null. A non-nil pointer to an empty struct
    (``newConfig: {}``) is kept. ``<`` and ``&`` are escaped (HTML-safe Marshal)."""
    spec = {
        "initMode": "new",
        "pgHBA": [],
        "additionalMasterReplicationSlots": [],
        "pgParameters": {},
        "newConfig": {},
        "additionalWalSenders": 0,
    }
    code, out, err = run("spec", cd=three_keepers(spec))
    assert (code, err) == (0, "")
    assert out == '{\n\t"additionalWalSenders": 0,\n\t"initMode": "new",\n\t"newConfig": {}\n}\n'
    spec = {
        "initMode": "new",
        "pgHBA": ["host all all 0.0.0.0/0 md5"],
        "pgParameters": {"log_line_prefix": "<%m> &"},
    }
    code, out, err = run("spec", cd=three_keepers(spec))
    assert (code, err) == (0, "")
    assert out == (
        '{\n\t"initMode": "new",\n\t"pgParameters": {\n\t\t"log_line_prefix": "\\u003c%m\\u003e \\u0026"\n\t},\n'
        '\t"pgHBA": [\n\t\t"host all all 0.0.0.0/0 md5"\n\t]\n}\n'
    )


def test_spec_prints_keys_of_ours_after_gos_when_set(run: Run) -> None:
    """Ours: fencing, backup, selfFencingTimeout follow Go's keys, only when set."""
    code, out, _ = run(
        "spec", "--defaults", cd=three_keepers({"initMode": "new", "selfFencingTimeout": "0s"})
    )
    assert code == 0
    assert out == GO_DEFAULTS_OF_INIT_NEW[: -len("\n}\n")] + ',\n\t"selfFencingTimeout": "0s"\n}\n'


# -- clusterdata read -------------------------------------------------------------------------
#: cluster data as Go's json.Marshal writes it (internal/cluster/cluster.go field order and tags)
GO_CD = (
    '{"formatVersion":1,"changeTime":"2024-05-01T10:00:00Z","cluster":{"uid":"c0d8f631","generation":1,'
    '"changeTime":"2024-05-01T10:00:00Z","spec":{"additionalWalSenders":null,'
    '"additionalMasterReplicationSlots":null,"initMode":"new","pgParameters":{"log_line_prefix":'
    '"\\u003c%m\\u003e "},"pgHBA":null,"automaticPgRestart":null},"status":{"phase":"normal","master":"db1"}},'
    '"keepers":{"keeper1":{"uid":"keeper1","changeTime":"0001-01-01T00:00:00Z","status":{"healthy":true,'
    '"lastHealthyTime":"0001-01-01T00:00:00Z","postgresBinaryVersion":{"Maj":0,"Min":0}}}},'
    '"dbs":{"db1":{"uid":"db1","generation":2,"changeTime":"0001-01-01T00:00:00Z","spec":{"keeperUID":"keeper1",'
    '"requestTimeout":"0s","additionalWalSenders":0,"additionalReplicationSlots":null,"pgHBA":null,'
    '"role":"master","followers":[],"synchronousStandbys":null,"externalSynchronousStandbys":null},'
    '"status":{"healthy":true,"currentGeneration":2,"listenAddress":"10.0.0.1","port":"5432",'
    '"synchronousStandbys":null}}},"proxy":{"changeTime":"0001-01-01T00:00:00Z","spec":{},"status":{}}}'
)


def test_clusterdata_read_reencodes_like_go(run: Run) -> None:
    """Go: cmd/stolonctl/cmd/clusterdata.go readClusterdata: getClusterData (unmarshal, format
    version and spec checks), then ``json.Marshal(cd)`` (``--pretty``: ``MarshalIndent(cd, "",
    "\\t")``) printed with a newline: the stored bytes are not printed as they are. Stored
    with spaces and a raw ``<``, the output is Go's compact form with ``\\u003c``."""
    stored = json.dumps(json.loads(GO_CD), indent=1).encode()
    assert b"<%m>" in stored
    code, out, err = run("clusterdata", "read", cd=stored)
    assert (code, err) == (0, "")
    assert out == GO_CD + "\n"
    code, out, _ = run("clusterdata", "read", "--pretty")
    assert code == 0
    assert out.startswith(
        '{\n\t"formatVersion": 1,\n\t"changeTime": "2024-05-01T10:00:00Z",\n\t"cluster": {\n\t\t"uid"'
    )
    assert '\t\t\t"pgParameters": {\n\t\t\t\t"log_line_prefix": "\\u003c%m\\u003e "\n\t\t\t},\n' in out
    assert out.endswith(
        '\t"proxy": {\n\t\t"changeTime": "0001-01-01T00:00:00Z",\n\t\t"spec": {},\n\t\t"status": {}\n\t}\n}\n'
    )
    assert json.loads(out) == json.loads(GO_CD)


def test_clusterdata_read_refuses_what_go_refuses(run: Run) -> None:
    """Go: getClusterData fails on an unsupported format version (and readClusterdata with
    it); we refuse with one line and print nothing."""
    bad = GO_CD.replace('"formatVersion":1', '"formatVersion":2').encode()
    code, out, err = run("clusterdata", "read", cd=bad)
    assert code == 1 and out == ""
    assert "unsupported clusterdata format version" in err and len(err.splitlines()) == 1


def test_stored_documents_escape_like_go(run: Run) -> None:
    """Go stores with ``json.Marshal`` (HTML-safe): what we write has ``\\u003c`` too."""
    cd = three_keepers({"initMode": "new", "pgParameters": {"log_line_prefix": "<%m> &"}})
    assert b'"log_line_prefix":"\\u003c%m\\u003e \\u0026"' in cd.to_bytes()
