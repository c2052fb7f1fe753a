#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
/* N x statx(AT_STATX_FORCE_SYNC) of one path: each one a GETATTR round trip to a FUSE daemon. */
int main(int argc, char **argv) {
    long n = atol(argv[2]);
    struct statx sx;
    struct timespec a, b;
    for (int i = 0; i < 100; i++) statx(AT_FDCWD, argv[1], AT_STATX_FORCE_SYNC, STATX_BASIC_STATS, &sx);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++)
        if (statx(AT_FDCWD, argv[1], AT_STATX_FORCE_SYNC, STATX_BASIC_STATS, &sx)) { perror("statx"); return 1; }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.2f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n / 1000.0);
    return 0;
}
