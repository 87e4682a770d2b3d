/*
 * procstat: the figures of Prometheus' standard process_* metrics for this
 * process, read from /proc/self (Linux only). Fields that cannot be read
 * are left at -1 and their metrics are left out.
 */
#ifndef PG_GATEWAY_PROCSTAT_H
#define PG_GATEWAY_PROCSTAT_H

typedef struct procstat {
    double cpu_seconds;      /* utime + stime */
    double resident_bytes;   /* VmRSS */
    double virtual_bytes;    /* VmSize */
    double open_fds;         /* entries of /proc/self/fd */
    double max_fds;          /* RLIMIT_NOFILE soft limit */
    double start_time_s;     /* since the epoch */
} procstat_t;

void procstat_read(procstat_t *ps);

#endif
