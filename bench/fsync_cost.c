/* What one durable write costs on this disk, without Python or SQLite in the way.
 *
 * Writes `count` blocks of `size` bytes to a scratch file in DIR, one every 2 ms (as commits
 * at a few hundred updates per second arrive), each made durable the way a commit can be:
 * fsync, fdatasync, O_DSYNC, O_DIRECT|O_DSYNC; appending (the file grows, as a new WAL does)
 * or overwriting blocks written before (as SQLite reuses its WAL after a checkpoint).
 * Prints p50/p90/p99 in ms. A SQLite commit in WAL mode with synchronous=FULL is one
 * fdatasync of the WAL after three page writes of about 4 KiB each.
 *
 *   cc -O2 -o /tmp/fsync_cost bench/fsync_cost.c && /tmp/fsync_cost edrys-data 12288 500
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void run(const char *dir, const char *mode, int size, int count, int overwrite) {
    char path[4096];
    snprintf(path, sizeof path, "%s/fsync_cost.scratch", dir);
    int flags = O_RDWR | O_CREAT | O_TRUNC;
    if (!strcmp(mode, "O_DSYNC")) flags |= O_DSYNC;
    if (!strcmp(mode, "O_DIRECT|O_DSYNC")) flags |= O_DSYNC | O_DIRECT;
    int fd = open(path, flags, 0600);
    char *block;
    double *took = malloc(sizeof(double) * count);
    if (fd < 0 || posix_memalign((void **)&block, 4096, size) || !took) {
        perror(path);
        exit(1);
    }
    memset(block, 'x', size);
    if (overwrite) {
        for (int i = 0; i < count; i++) pwrite(fd, block, size, (off_t)i * size);
        fsync(fd);
    }
    for (int i = 0; i < count; i++) {
        double start = now_ms();
        if (pwrite(fd, block, size, (off_t)i * size) != size) {
            perror("pwrite");
            exit(1);
        }
        if (!strcmp(mode, "fsync")) fsync(fd);
        if (!strcmp(mode, "fdatasync")) fdatasync(fd);
        took[i] = now_ms() - start;
        usleep(2000);
    }
    close(fd);
    unlink(path);
    qsort(took, count, sizeof(double), by_value);
    printf("%-17s %-9s %6d B  p50 %.3f  p90 %.3f  p99 %.3f ms\n", mode,
           overwrite ? "overwrite" : "append", size, took[count / 2], took[count * 9 / 10],
           took[count * 99 / 100]);
    free(took);
    free(block);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : ".";
    int size = argc > 2 ? atoi(argv[2]) : 12288;
    int count = argc > 3 ? atoi(argv[3]) : 500;
    const char *modes[] = {"fsync", "fdatasync", "O_DSYNC", "O_DIRECT|O_DSYNC"};
    for (int m = 0; m < 4; m++)
        for (int overwrite = 0; overwrite < 2; overwrite++) run(dir, modes[m], size, count, overwrite);
    return 0;
}
