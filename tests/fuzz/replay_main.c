/*
 * Replays fuzz inputs without libFuzzer: calls the harness's LLVMFuzzerTestOneInput() once
 * per file named on the command line, or per file of each directory named (sorted by name,
 * dot files skipped). Each input gets a heap buffer of exactly its size, so that an ASan
 * build catches a harness or parser reading past it. Exits 0 when every input ran, 1 when
 * an argument cannot be read or names no input at all; a bug in the code under test shows
 * as a crash or a sanitizer report, as under libFuzzer.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional in a harness, as with libFuzzer. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

#define MAX_INPUT_BYTES (16u << 20)

/* Reads PATH into a malloc'd buffer of its exact size (*DATA, caller frees; NULL when the
 * file is empty). Returns 0 or -1. */
static int read_input(const char *path, uint8_t **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    int rc = -1;

    *data = NULL;
    *size = 0;
    if (f == NULL || fstat(fileno(f), &st) != 0 || st.st_size < 0 ||
        (uint64_t)st.st_size > MAX_INPUT_BYTES)
        goto out;
    *size = (size_t)st.st_size;
    if (*size > 0) {
        *data = malloc(*size);
        if (*data == NULL || fread(*data, 1, *size, f) != *size) {
            free(*data);
            *data = NULL;
            goto out;
        }
    }
    rc = 0;
out:
    if (f != NULL)
        fclose(f);
    return rc;
}

/* Runs the harness on the file PATH; returns 0 or -1. */
static int replay_file(const char *path)
{
    uint8_t *data = NULL;
    size_t size = 0;

    if (read_input(path, &data, &size) != 0) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        return -1;
    }
    LLVMFuzzerTestOneInput(data, size);
    free(data);
    return 0;
}

/* Orders directory entries by name, for a reproducible replay. */
static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs the harness on every regular file in DIR; adds their number to *COUNT. Returns 0
 * or -1. */
static int replay_dir(const char *dir, size_t *count)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = -1;

    if (d == NULL) {
        fprintf(stderr, "replay: cannot open %s\n", dir);
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            size_t grown = cap > 0 ? cap * 2 : 64;
            char **bigger = realloc(names, grown * sizeof(*names));
            if (bigger == NULL)
                goto out;
            names = bigger;
            cap = grown;
        }
        names[n] = strdup(e->d_name);
        if (names[n] == NULL)
            goto out;
        n++;
    }
    qsort(names, n, sizeof(*names), compare_names);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (replay_file(path) != 0)
            goto out;
        (*count)++;
    }
    rc = 0;
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

int main(int argc, char **argv)
{
    size_t count = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
        return 1;
    }
    if (LLVMFuzzerInitialize != NULL)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: cannot read %s\n", argv[i]);
            return 1;
        }
        if (S_ISDIR(st.st_mode)) {
            if (replay_dir(argv[i], &count) != 0)
                return 1;
        } else {
            if (replay_file(argv[i]) != 0)
                return 1;
            count++;
        }
    }
    if (count == 0) {
        fprintf(stderr, "replay: no inputs found\n");
        return 1;
    }
    printf("replayed %zu input(s)\n", count);
    return 0;
}
