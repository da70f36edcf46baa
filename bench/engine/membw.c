/* Memory-bandwidth probe for bench/engine: the physical limit of CPU decode.
 *
 *   membw [--threads N] [--mib M] [--seconds S]
 *
 * Each of N threads repeatedly sums its own slice of an M MiB buffer (read-only streaming,
 * like a decode step reading the weights) and, separately, memcpy()s a slice (read+write).
 * The buffer is far larger than the caches. Prints the best pass of each:
 *   MEMBW threads=N mib=M read_gb_s=... copy_gb_s=...   (GB = 1e9 bytes; copy counts
 *   the bytes read plus the bytes written)
 * Build: cc -O2 -march=native -pthread membw.c -o membw
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef uint64_t u64v __attribute__((vector_size(32)));

static int nthreads = 2;
static size_t slice_bytes;
static unsigned char *buf, *dst;
static pthread_barrier_t bar;
static double read_best[256], copy_best[256];
static volatile u64v sink[256];
static double seconds = 1.0;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static u64v sum_slice(const unsigned char *p, size_t n) {
    const u64v *v = (const u64v *)(const void *)p;
    size_t k = n / sizeof(u64v);
    u64v a = {0}, b = {0}, c = {0}, d = {0};
    for (size_t i = 0; i + 4 <= k; i += 4) {
        a += v[i]; b += v[i + 1]; c += v[i + 2]; d += v[i + 3];
    }
    return a + b + c + d;
}

static void *worker(void *arg) {
    int id = (int)(intptr_t)arg;
    unsigned char *mine = buf + (size_t)id * slice_bytes;
    unsigned char *out = dst + (size_t)id * slice_bytes;
    memset(mine, id + 1, slice_bytes); /* first touch: pages local to this thread */
    memset(out, 0, slice_bytes);
    for (int phase = 0; phase < 2; phase++) {
        double end, best = 0;
        pthread_barrier_wait(&bar);
        end = now() + seconds;
        do {
            /* all threads start a pass together so their bandwidth adds up */
            double t0 = now(), dt;
            if (phase == 0) sink[id] += sum_slice(mine, slice_bytes);
            else memcpy(out, mine, slice_bytes);
            dt = now() - t0;
            if (dt > 0 && (double)slice_bytes / dt > best) best = (double)slice_bytes / dt;
        } while (now() < end);
        if (phase == 0) read_best[id] = best; else copy_best[id] = 2 * best;
    }
    return NULL;
}

int main(int argc, char **argv) {
    size_t mib = 1024;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) nthreads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--mib")) mib = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else { fprintf(stderr, "membw: unknown option %s\n", argv[i]); return 2; }
    }
    if (nthreads < 1 || nthreads > 256 || mib < 16) { fprintf(stderr, "membw: bad options\n"); return 2; }
    slice_bytes = (mib << 20) / (size_t)nthreads / 4096 * 4096;
    if (posix_memalign((void **)&buf, 4096, slice_bytes * (size_t)nthreads) ||
        posix_memalign((void **)&dst, 4096, slice_bytes * (size_t)nthreads)) {
        fprintf(stderr, "membw: out of memory\n");
        return 1;
    }
    pthread_t th[256];
    pthread_barrier_init(&bar, NULL, (unsigned)nthreads);
    for (int i = 0; i < nthreads; i++) pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i);
    double rd = 0, cp = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        rd += read_best[i];
        cp += copy_best[i];
    }
    /* sum of per-thread bests: an upper-ish bound; the passes run concurrently */
    printf("MEMBW threads=%d mib=%zu read_gb_s=%.2f copy_gb_s=%.2f\n", nthreads, mib, rd / 1e9, cp / 1e9);
    free(buf);
    free(dst);
    return 0;
}
