"""State a stolonctl command runs with: parsed flags, streams, and the store (opened lazily)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import IO, Any

from stolon.cli.common import CliError, store_config_from_args
from stolon.model import ClusterData, ModelError
from stolon.plugins import StolonPluginManager
from stolon.store import ClusterStore, open_store
from stolon.store.base import Revision


@dataclass
class CtlContext:
    """``plugins`` is the plugin manager stolonctl's entry point built: the store backend,
    the backup methods and ``stolonctl plugins`` come from it."""

    args: argparse.Namespace
    plugins: StolonPluginManager
    stdin: IO[str] = field(default_factory=lambda: sys.stdin)
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    _store: ClusterStore | None = None

    def out(self, text: str = "") -> None:
        print(text, file=self.stdout)

    def err(self, text: str) -> None:
        print(text, file=self.stderr)

    @property
    def store(self) -> ClusterStore:
        if self._store is None:
            self._store = open_store(store_config_from_args(self.args), self.plugins)
            # A command reports what it can't read itself (one line), it does not log it.
            self._store.malformed.enabled = False
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def cluster_data(self, *, require_valid_spec: bool = True) -> tuple[ClusterData, Revision]:
        """The stored cluster data, which must exist and carry a spec.

        The stored spec is checked leniently (:meth:`ClusterSpec.validate_stored`): a spec
        Go Stolon accepts works, and each rule of ours it breaks is printed as a warning on
        stderr. ``require_valid_spec=False`` skips even Go's rules (``update`` replaces it).
        """
        try:
            cd, rev = self.store.get_cluster_data()
        except ModelError as e:
            raise CliError(f"cannot read the stored cluster data: {e}") from None
        if cd is None:
            raise CliError("no cluster data available: initialize the cluster with `stolonctl init`")
        if cd.cluster is None or cd.cluster.spec is None:
            raise CliError("no cluster spec available: re-initialize the cluster with `stolonctl init`")
        if require_valid_spec:
            try:
                warnings = cd.cluster.spec.validate_stored()
            except ModelError as e:
                raise CliError(
                    f"the stored cluster spec is invalid: {e}; fix it with `stolonctl update`"
                ) from None
            for w in warnings:
                self.err(f"WARNING: stored cluster spec: {w}")
        return cd, rev

    def confirm(self, message: str) -> bool:
        """Go Stolon's askConfirmation: loop until ``yes`` or ``no``."""
        while True:
            self.stdout.write(message)
            self.stdout.flush()
            line = self.stdin.readline()
            if line == "":
                raise CliError("no confirmation received (standard input closed): use --yes to skip it")
            answer = line.strip()
            if answer == "yes":
                return True
            if answer == "no":
                return False
            self.out("Please enter 'yes' or 'no'")

    def read_input(
        self, arg: str | None, file: str | None, what: str, *, required: bool = True
    ) -> str | None:
        """Data given either as an argument or with ``-f FILE`` (``-`` is standard input)."""
        if arg is not None and file:
            raise CliError(f"give the {what} either as an argument or with --file, not both")
        if arg is not None:
            return arg
        if file:
            if file == "-":
                return self.stdin.read()
            try:
                with open(file, encoding="utf-8") as f:
                    return f.read()
            except OSError as e:
                raise CliError(f"cannot read file {file!r}: {e.strerror}") from None
        if required:
            raise CliError(f"no {what} provided: give it as an argument or with --file/-f (- for stdin)")
        return None

    def __enter__(self) -> CtlContext:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
