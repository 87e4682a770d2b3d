#include "gateway/procstat.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Fields 14 (utime), 15 (stime), 22 (starttime, ticks after boot), 23
 * (vsize) and 24 (rss, pages) of /proc/self/stat; comm (field 2) may hold
 * spaces, so parsing starts after its closing parenthesis. */
static void read_stat(procstat_t *ps)
{
    char text[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f)
        return;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    char *p = strrchr(text, ')');
    if (!p)
        return;
    unsigned long long field[25] = { 0 }; /* field[i]: field i, from 3 on */
    char *save = NULL;
    int i = 3;
    for (char *tok = strtok_r(p + 1, " ", &save); tok && i < 25; tok = strtok_r(NULL, " ", &save), i++)
        field[i] = strtoull(tok, NULL, 10); /* field 3 (a letter) reads as 0 */
    if (i < 25)
        return;
    double hz = (double)sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    ps->cpu_seconds = (double)(field[14] + field[15]) / hz;
    ps->virtual_bytes = (double)field[23];
    ps->resident_bytes = (double)field[24] * (double)page;

    /* boot time, for the start time */
    f = fopen("/proc/stat", "r");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "btime ", 6) == 0) {
            ps->start_time_s = (double)strtoull(line + 6, NULL, 10) + (double)field[22] / hz;
            break;
        }
    }
    fclose(f);
}

static void count_fds(procstat_t *ps)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    ps->open_fds = (double)(n - 1); /* the directory stream's own fd */
}

void procstat_read(procstat_t *ps)
{
    *ps = (procstat_t){ -1, -1, -1, -1, -1, -1 };
    read_stat(ps);
    count_fds(ps);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        ps->max_fds = rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur;
}
