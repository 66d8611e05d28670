/*
 * stolon_lease: refuse a write transaction's commit when this server's master lease
 * has lapsed.
 *
 * stolon's keeper fences a master that the store has not confirmed for
 * selfFencingTimeout (default_transaction_read_only, then it terminates the client
 * sessions). That fence is a configuration change applied by another process: a machine
 * resumed after a pause (SIGSTOP of every process, a frozen VM) lets its backends commit
 * what their clients sent before the keeper gets to run. This module closes that window:
 * at commit time (XACT_EVENT_PRE_COMMIT / PRE_PREPARE) of a client transaction that
 * wrote, it reads the lease file the keeper maintains and refuses the commit when the
 * lease has lapsed.
 *
 * The lease file (GUC stolon_lease.file, relative to the data directory; empty: no
 * check) holds one line: "<deadline> <boot id>", the deadline in nanoseconds of
 * CLOCK_MONOTONIC and the machine's boot id (/proc/sys/kernel/random/boot_id), since
 * CLOCK_MONOTONIC restarts at every boot. A missing, unreadable or malformed file, a
 * lease from another boot and a lapsed deadline all refuse the commit (fail closed).
 *
 * Loaded through shared_preload_libraries. See README.md and docs/self-fencing.md.
 */
#include "postgres.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "access/transam.h"
#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

#define BOOT_ID_FILE "/proc/sys/kernel/random/boot_id"
/* a lease line is ~60 bytes; anything longer is not one */
#define LEASE_MAX 128
#define BOOT_ID_MAX 64

static char *lease_file = NULL;
/* read once in the postmaster: a boot id never changes while the machine runs */
static char boot_id[BOOT_ID_MAX];

/* Read at most size-1 bytes of path into buf (NUL-terminated); -1 with errno set. */
static ssize_t
read_small_file(const char *path, char *buf, size_t size)
{
	int			fd;
	ssize_t		n;
	int			saved;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	do
		n = read(fd, buf, size - 1);
	while (n < 0 && errno == EINTR);
	saved = errno;
	close(fd);
	errno = saved;
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

static void
load_boot_id(void)
{
	char		buf[BOOT_ID_MAX];
	ssize_t		n = read_small_file(BOOT_ID_FILE, buf, sizeof(buf));

	boot_id[0] = '\0';
	if (n <= 0)
		return;
	buf[strcspn(buf, " \t\r\n")] = '\0';
	strlcpy(boot_id, buf, sizeof(boot_id));
}

static int64
monotonic_now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		elog(ERROR, "stolon: clock_gettime(CLOCK_MONOTONIC) failed: %m");
	return (int64) ts.tv_sec * INT64CONST(1000000000) + ts.tv_nsec;
}

#define REFUSE(detail_fmt, ...) \
	ereport(ERROR, \
			(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION), \
			 errmsg("stolon: this server's master lease expired: the commit is refused"), \
			 errdetail(detail_fmt, __VA_ARGS__), \
			 errhint("This server may no longer be the master: reconnect through stolon-proxy or to the current master.")))

static void
check_lease(void)
{
	char		buf[LEASE_MAX];
	char	   *end;
	char	   *id;
	ssize_t		n;
	long long	deadline;
	int64		now;

	n = read_small_file(lease_file, buf, sizeof(buf));
	if (n < 0)
		REFUSE("The lease file \"%s\" cannot be read: %m.", lease_file);
	if ((size_t) n >= sizeof(buf) - 1)
		REFUSE("The lease file \"%s\" is too long to be a lease.", lease_file);

	errno = 0;
	deadline = strtoll(buf, &end, 10);
	if (end == buf || errno != 0 || deadline < 0 || *end != ' ')
		REFUSE("The lease file \"%s\" is malformed (expected \"<deadline ns> <boot id>\").", lease_file);
	id = end + 1;
	id[strcspn(id, " \t\r\n")] = '\0';
	if (boot_id[0] == '\0')
		REFUSE("The machine's boot id (%s) could not be read when the server started.", BOOT_ID_FILE);
	if (strcmp(id, boot_id) != 0)
		REFUSE("The lease in \"%s\" was written during another boot of the machine.", lease_file);

	now = monotonic_now_ns();
	if (deadline == 0)
		REFUSE("The stolon keeper revoked the lease (\"%s\"): this server is not, or no longer, the master.",
			   lease_file);
	if (now >= deadline)
		REFUSE("The lease in \"%s\" lapsed %.3f s ago: the stolon keeper has not been able to confirm this server as the master.",
			   lease_file, (double) (now - deadline) / 1e9);
}

static void
lease_xact_callback(XactEvent event, void *arg)
{
	if (event != XACT_EVENT_PRE_COMMIT && event != XACT_EVENT_PRE_PREPARE)
		return;
	/* client sessions only: not autovacuum, background or parallel workers, walsenders */
	if (MyBackendType != B_BACKEND)
		return;
	if (lease_file == NULL || lease_file[0] == '\0')
		return;
	/* read-only transactions (no xid) write no commit record: nothing to refuse */
	if (!TransactionIdIsValid(GetTopTransactionIdIfAny()))
		return;
	check_lease();
}

void
_PG_init(void)
{
	DefineCustomStringVariable("stolon_lease.file",
							   "File holding this server's master lease (written by the stolon keeper).",
							   "Relative to the data directory. Empty: commits are not checked.",
							   &lease_file,
							   "",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);
#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("stolon_lease");
#else
	EmitWarningsOnPlaceholders("stolon_lease");
#endif
	load_boot_id();
	RegisterXactCallback(lease_xact_callback, NULL);
}
