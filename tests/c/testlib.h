/* testlib.h — what the cluster tests share: the test cluster's DSN, the
 * cluster script (lag and faults made real), and direct admin SQL per node. */
#ifndef WR_TESTLIB_H
#define WR_TESTLIB_H

#include <libpq-fe.h>

#include "walrouter.h"

/* The multi-host DSN of the running test cluster (WR_TEST_DSN); exits the
 * test with a clear message when it is not set. */
const char *t_dsn(void);
/* Runs `tests/cluster.sh <args>`; returns its exit status. */
int t_cluster(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Same, capturing the last line of its stdout into out (e.g. `start`). */
int t_cluster_out(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Sets the DSN the helpers below use (default: WR_TEST_DSN). */
void t_use_dsn(const char *dsn);
/* Sleeps ms milliseconds between two polls of a condition. */
void t_nap(int ms);
/* Runs SQL on node i directly (not through walrouter); returns the first
 * value of the first row in a static buffer ("" when none), exits on error. */
const char *t_sql(int node, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The node that is currently the primary, by asking every node. */
int t_primary(void);
/* Whether the test runs under valgrind (slow logins: longer timeouts). */
int t_under_valgrind(void);
/* Opens the test cluster through walrouter (under valgrind with a 30 s
 * connect timeout unless opt sets one); exits on failure. */
wr_cluster *t_open(const wr_options *opt);
/* Current primary insert position, read directly. */
wr_lsn t_primary_lsn(void);

#endif
