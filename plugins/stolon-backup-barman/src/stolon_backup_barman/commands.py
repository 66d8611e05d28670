"""argv for the barman-cloud tools, and the fixed script that makes WAL archiving safe.

``barman-cloud-wal-archive`` (checked with Barman 3.19.1) uploads unconditionally: a second
push of a segment under the same name silently replaces the object, whatever its content.
PostgreSQL's contract (and stolon's, ``archive_mode = always`` on every instance) needs
"identical content: success; different content: failure". So the archive command runs
:data:`ARCHIVE_SCRIPT`, a fixed ``sh`` script that first asks ``barman-cloud-wal-restore``
for the segment:

* found (exit 0): compare it byte for byte with the local file (after the tool has
  decompressed it): equal, exit 0 without uploading; different, exit 1 and say so;
* not there (exit 1 and "does not exist" on stderr): run ``barman-cloud-wal-archive``;
* anything else (the storage can't be reached, bad credentials...): exit 1 with the tool's
  message, never upload blind.

The script's text is a constant of this module; ``prepare`` writes it into the method's work
directory (PostgreSQL 15 and older truncate a longer ``archive_command``). Everything
variable (paths, URL, server name, options) reaches it as positional arguments, never as
shell code. The check and the upload are two requests: two archivers
pushing *different* content under one name at the same instant could both pass the check
(S3 offers no create-only put that Barman uses); stolon's instances push the same content
under a name (the master and its standbys), so the window matters only for a split brain,
which stolon's fencing and timelines are there to prevent.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

ARCHIVE = "barman-cloud-wal-archive"
RESTORE = "barman-cloud-wal-restore"
BACKUP = "barman-cloud-backup"
LIST = "barman-cloud-backup-list"
RESTORE_BACKUP = "barman-cloud-restore"
DELETE = "barman-cloud-backup-delete"
TOOLS = (ARCHIVE, RESTORE, BACKUP, LIST, RESTORE_BACKUP, DELETE)

#: The archive script, written by ``prepare`` into the method's work directory (its content
#: is this constant: nothing from the settings) and run as ``sh <work dir>/archive-wal.sh``:
#: PostgreSQL 15 and older cut ``archive_command`` at 1023 bytes, too short to carry it.
#: $0 the script (its directory is the work directory), $1 the file (%p), $2 its name (%f),
#: $3 "aws-files" to use the AWS files of the work directory (else the ambient AWS
#: configuration), $4 barman-cloud-wal-restore, $5 barman-cloud-wal-archive, $6 the
#: compression option or "", then what both tools take: options, destination URL, server.
ARCHIVE_SCRIPT = """\
# stolon: archive one WAL file with barman-cloud-wal-archive, refusing to overwrite an
# archived file with different content (barman-cloud-wal-archive alone would).
src=$1; name=$2; creds=$3; restore=$4; archive=$5; comp=$6; shift 6
dir=${0%/*}
if [ "$creds" = aws-files ]; then
  unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_SECURITY_TOKEN \
    AWS_PROFILE AWS_DEFAULT_PROFILE AWS_DEFAULT_REGION AWS_REGION
  AWS_SHARED_CREDENTIALS_FILE="$dir/aws-credentials"; AWS_CONFIG_FILE="$dir/aws-config"
  export AWS_SHARED_CREDENTIALS_FILE AWS_CONFIG_FILE
fi
# barman-cloud-wal-restore never returns a backup history file (*.backup): no check to make
case $name in *.backup) exec "$archive" ${comp:+"$comp"} "$@" "$src" ;; esac
tmp="$dir/.archive-check.$$"
rm -rf "$tmp" && mkdir -m 700 "$tmp" || exit 1
case $name in *.partial) np= ;; *) np=--no-partial ;; esac
"$restore" $np --spool-dir "$tmp/spool" "$@" "$name" "$tmp/wal" 2>"$tmp/err"
rc=$?
if [ "$rc" -eq 0 ]; then
  if cmp -s "$src" "$tmp/wal"; then rm -rf "$tmp"; exit 0; fi
  rm -rf "$tmp"
  echo "stolon: $name is already archived with different content: refusing to overwrite it" >&2
  exit 1
fi
if [ "$rc" -ne 1 ] || ! grep -q "does not exist" "$tmp/err"; then
  cat "$tmp/err" >&2
  rm -rf "$tmp"
  echo "stolon: cannot tell whether $name is already archived ($restore exit $rc): not archiving it" >&2
  exit 1
fi
rm -rf "$tmp"
exec "$archive" ${comp:+"$comp"} "$@" "$src"
"""
SCRIPT_FILE = "archive-wal.sh"
#: PostgreSQL before 16 silently truncates the expanded archive_command to this many bytes
PRE16_ARCHIVE_COMMAND_MAX = 1023


def compression_option(compression: str) -> str:
    """The tools' option for ``compression`` ("" for none)."""
    return "" if compression == "none" else f"--{compression}"


def common_options(endpoint_url: str, addressing_style: str) -> list[str]:
    """Options every barman-cloud tool takes (before its positional arguments)."""
    argv = ["--cloud-provider", "aws-s3"]
    if endpoint_url:
        argv += ["--endpoint-url", endpoint_url]
    if addressing_style and addressing_style != "auto":
        argv += ["--addressing-style", addressing_style]
    return argv


def archive_argv(
    *,
    work_dir: Path,
    use_aws_files: bool,
    restore_tool: str,
    archive_tool: str,
    compression: str,
    shared: Sequence[str],
) -> list[str]:
    """``archive_command`` argv (``%p``/``%f`` placeholders) running :data:`ARCHIVE_SCRIPT`
    from ``work_dir``; ``shared`` ends with the URL and the server name."""
    return [
        "/bin/sh",
        str(work_dir / SCRIPT_FILE),
        "%p",
        "%f",
        "aws-files" if use_aws_files else "ambient",
        restore_tool,
        archive_tool,
        compression_option(compression),
        *shared,
    ]


def restore_argv(
    prefix: Sequence[str], restore_tool: str, spool_dir: Path, shared: Sequence[str]
) -> list[str]:
    """``restore_command`` argv. ``--no-partial``: never hand PostgreSQL a ``.partial``
    segment for a full one (and without it, when both exist, Barman downloads the partial
    into its spool under the full name); ``--spool-dir``: this instance's own spool, not
    the host-wide ``/var/tmp/walrestore``."""
    return [*prefix, restore_tool, "--no-partial", "--spool-dir", str(spool_dir), *shared, "%f", "%p"]
