/* probe: looking at a running gateway from outside, for resilience and
 * soak tests: admin API fetches, Prometheus samples, open descriptors, and
 * the test process's own open-files limit.
 *
 * Nothing here calls cmocka; any thread may call these. Errors: 0 (or a
 * count) or a negative errno.
 */
#ifndef PG_TESTS_SUPPORT_PROBE_H
#define PG_TESTS_SUPPORT_PROBE_H

#include <stdbool.h>
#include <sys/types.h>

/* GET path on 127.0.0.1:port on a new connection. The body (heap,
 * NUL-terminated, caller frees) and *status (if not NULL), or NULL when no
 * response came within timeout_ms. */
char *probe_get(int port, const char *path, int *status, int timeout_ms);

/* The value of the first sample of metric `name` in Prometheus text whose
 * label set contains every `key="value"` string of labels (NULL-terminated;
 * NULL: any sample of that name). 0 and *value, or -ENOENT. */
int probe_metric(const char *text, const char *name, const char *const *labels, double *value);

/* Fetches /metrics from port and looks the sample up as probe_metric()
 * does. -EIO when /metrics did not answer 200. */
int probe_metric_at(int port, const char *name, const char *const *labels, double *value,
                    int timeout_ms);

/* How many descriptors process pid has open (entries of /proc/PID/fd),
 * or a negative errno. */
int probe_fd_count(pid_t pid);

/* Raises the soft RLIMIT_NOFILE of the test process to its hard limit.
 * Returns the new soft limit, or a negative errno. */
long probe_raise_nofile(void);

#endif
