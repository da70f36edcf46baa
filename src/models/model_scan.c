/* Model discovery: directory walk, split sets, projector attachment, unique ids. */
#include "model_scan.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* One *.gguf file met during the walk. */
struct scan_file {
    char *path;
    char *dir;  /* path of the directory holding it */
    char *base; /* file name */
    size_t root_index;
    uint64_t size;
    int is_mmproj;
    uint32_t split_no; /* 1-based; 0 when not a split name */
    uint32_t split_count;
    size_t prefix_len; /* split sets: length of NAME in NAME-00001-of-00003.gguf */
    int is_consumed;   /* folded into a model (later split part) or dropped */
};

/* The walk's state: found files, visited directories, warnings. */
struct scan_ctx {
    struct scan_file *files;
    size_t n_files;
    size_t cap_files;
    size_t max_files;
    int max_depth;
    struct {
        dev_t dev;
        ino_t ino;
    } * seen;
    size_t n_seen;
    size_t cap_seen;
    int has_hit_file_cap;
    int is_oom;
    struct model_scan_result *res;
};

/* Appends a formatted warning to the result (dropped past MODEL_SCAN_MAX_WARNINGS). */
static void warnf(struct scan_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void warnf(struct scan_ctx *c, const char *fmt, ...)
{
    struct model_scan_result *res = c->res;
    char buf[1024];
    va_list ap;
    if (res->n_warnings >= MODEL_SCAN_MAX_WARNINGS) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (res->warnings == NULL) {
        res->warnings = calloc(MODEL_SCAN_MAX_WARNINGS, sizeof(*res->warnings));
        if (res->warnings == NULL) {
            c->is_oom = 1;
            return;
        }
    }
    res->warnings[res->n_warnings] = strdup(buf);
    if (res->warnings[res->n_warnings] == NULL) {
        c->is_oom = 1;
        return;
    }
    res->n_warnings++;
}

/* Returns a new string "A/B" (caller frees), or NULL. */
static char *join(const char *a, const char *b)
{
    size_t la = strlen(a);
    size_t lb = strlen(b);
    int has_slash = la > 0 && a[la - 1] == '/';
    char *s = malloc(la + lb + 2);
    if (s == NULL) {
        return NULL;
    }
    memcpy(s, a, la);
    if (!has_slash) {
        s[la++] = '/';
    }
    memcpy(s + la, b, lb + 1);
    return s;
}

/* Returns whether NAME ends with SUFFIX, ignoring case. */
static int ends_with_ci(const char *name, const char *suffix)
{
    size_t n = strlen(name);
    size_t s = strlen(suffix);
    return n >= s && strcasecmp(name + n - s, suffix) == 0;
}

/* Returns the position of NEEDLE in HAY ignoring case, or NULL. */
static const char *find_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = hay; *p != '\0'; p++) {
        if (strncasecmp(p, needle, n) == 0) {
            return p;
        }
    }
    return NULL;
}

/*
 * Parses a split name NAME-00001-of-00003.gguf: sets *NO, *COUNT and *PREFIX_LEN and returns
 * 1, or returns 0 for any other name (including part numbers out of range).
 */
static int parse_split(const char *base, uint32_t *no, uint32_t *count, size_t *prefix_len)
{
    static const char tail[] = "-00000-of-00000.gguf";
    size_t n = strlen(base);
    size_t t = sizeof(tail) - 1;
    if (n <= t || !ends_with_ci(base, ".gguf")) {
        return 0;
    }
    const char *s = base + n - t;
    for (size_t i = 0; i < t - 5; i++) {
        int want_digit = tail[i] == '0';
        if (want_digit ? !isdigit((unsigned char)s[i]) : s[i] != tail[i]) {
            return 0;
        }
    }
    unsigned long a = strtoul(s + 1, NULL, 10);
    unsigned long b = strtoul(s + 10, NULL, 10);
    if (a < 1 || b < 1 || a > b || b > MODEL_SCAN_MAX_SPLIT_PARTS) {
        return 0;
    }
    *no = (uint32_t)a;
    *count = (uint32_t)b;
    *prefix_len = n - t;
    return 1;
}

char *model_scan_id_from_name(const char *file_name)
{
    const char *base = strrchr(file_name, '/');
    base = base != NULL ? base + 1 : file_name;
    size_t len = strlen(base);
    uint32_t no = 0;
    uint32_t count = 0;
    size_t prefix_len = 0;
    if (parse_split(base, &no, &count, &prefix_len)) {
        len = prefix_len;
    } else if (ends_with_ci(base, ".gguf")) {
        len -= 5;
    }
    if (len == 0) {
        return strdup("model");
    }
    char *id = malloc(len + 1);
    if (id == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)base[i];
        id[i] = isalnum(ch) || ch == '.' || ch == '_' || ch == '-' ? (char)ch : '-';
    }
    id[len] = '\0';
    return id;
}

/* Records a directory as visited; returns 1 when it was new, 0 when seen before or on OOM. */
static int mark_seen(struct scan_ctx *c, const struct stat *st)
{
    for (size_t i = 0; i < c->n_seen; i++) {
        if (c->seen[i].dev == st->st_dev && c->seen[i].ino == st->st_ino) {
            return 0;
        }
    }
    if (c->n_seen >= MODEL_SCAN_MAX_DIRS) {
        return 0;
    }
    if (c->n_seen == c->cap_seen) {
        size_t cap = c->cap_seen ? c->cap_seen * 2 : 64;
        void *p = realloc(c->seen, cap * sizeof(*c->seen));
        if (p == NULL) {
            c->is_oom = 1;
            return 0;
        }
        c->seen = p;
        c->cap_seen = cap;
    }
    c->seen[c->n_seen].dev = st->st_dev;
    c->seen[c->n_seen].ino = st->st_ino;
    c->n_seen++;
    return 1;
}

/* Returns the directory part of PATH as a new string, or NULL. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash == NULL ? strdup(".") : strndup(path, (size_t)(slash - path));
}

/* Adds one *.gguf file to the list (PATH is taken). */
static void add_file(struct scan_ctx *c, char *path, const char *base, size_t root_index,
                     uint64_t size)
{
    struct scan_file f = {.path = path, .root_index = root_index, .size = size};
    if (c->n_files >= c->max_files) {
        if (!c->has_hit_file_cap) {
            warnf(c, "stopped after %zu .gguf files; the rest is ignored", c->max_files);
        }
        c->has_hit_file_cap = 1;
        free(path);
        return;
    }
    if (c->n_files == c->cap_files) {
        size_t cap = c->cap_files ? c->cap_files * 2 : 32;
        void *p = realloc(c->files, cap * sizeof(*c->files));
        if (p == NULL) {
            c->is_oom = 1;
            free(path);
            return;
        }
        c->files = p;
        c->cap_files = cap;
    }
    f.dir = dir_of(path);
    f.base = strdup(base);
    if (f.dir == NULL || f.base == NULL) {
        c->is_oom = 1;
        free(f.dir);
        free(f.base);
        free(path);
        return;
    }
    f.is_mmproj = find_ci(base, "mmproj") != NULL;
    parse_split(base, &f.split_no, &f.split_count, &f.prefix_len);
    c->files[c->n_files++] = f;
}

/* Compares directory entry names, for a deterministic walk order. */
static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Walks DIR (already marked seen) down to max_depth, following symbolic links (Hugging Face
 * caches are links into a blob store) but never a directory twice, so link loops end.
 * Names starting with '.' are skipped.
 */
static void walk(struct scan_ctx *c, const char *dir, size_t root_index, int depth)
{
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t n = 0;
    size_t cap = 0;
    if (d == NULL) {
        warnf(c, "%s: cannot open directory: %s", dir, strerror(errno));
        return;
    }
    for (struct dirent *de = readdir(d); de != NULL; de = readdir(d)) {
        if (de->d_name[0] == '.') {
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            void *p = realloc(names, ncap * sizeof(*names));
            if (p == NULL) {
                c->is_oom = 1;
                break;
            }
            names = p;
            cap = ncap;
        }
        names[n] = strdup(de->d_name);
        if (names[n] == NULL) {
            c->is_oom = 1;
            break;
        }
        n++;
    }
    closedir(d);
    if (n > 0) {
        qsort(names, n, sizeof(*names), cmp_names);
    }
    for (size_t i = 0; i < n && !c->is_oom; i++) {
        char *path = join(dir, names[i]);
        struct stat st;
        if (path == NULL) {
            c->is_oom = 1;
            break;
        }
        if (stat(path, &st) != 0) {
            if (ends_with_ci(names[i], ".gguf")) {
                warnf(c, "%s: %s", path, strerror(errno)); /* e.g. a dangling link */
            }
            free(path);
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            if (depth < c->max_depth && mark_seen(c, &st)) {
                walk(c, path, root_index, depth + 1);
            }
            free(path);
        } else if (S_ISREG(st.st_mode) && ends_with_ci(names[i], ".gguf")) {
            add_file(c, path, names[i], root_index, (uint64_t)st.st_size);
        } else {
            free(path);
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
}

/* Orders files by directory then name, so split parts and projectors sit together. */
static int cmp_files(const void *a, const void *b)
{
    const struct scan_file *fa = a;
    const struct scan_file *fb = b;
    int rc = strcmp(fa->dir, fb->dir);
    if (rc == 0) {
        rc = strcmp(fa->base, fb->base);
    }
    return rc;
}

/* Returns the file DIR/BASE from the sorted list, or NULL. */
static struct scan_file *lookup(struct scan_ctx *c, const char *dir, const char *base)
{
    struct scan_file key = {.dir = (char *)dir, .base = (char *)base};
    return bsearch(&key, c->files, c->n_files, sizeof(*c->files), cmp_files);
}

/* Writes the name of part NO of F's split set into BUF. */
static void part_name(const struct scan_file *f, uint32_t no, char *buf, size_t len)
{
    snprintf(buf, len, "%.*s-%05u-of-%05u.gguf", (int)f->prefix_len, f->base, no, f->split_count);
}

/* Sets ENTRY->error to "what: cause" (cause is taken). */
static void set_error(struct scan_ctx *c, struct model_entry *e, char *cause)
{
    e->error = strdup(cause != NULL ? cause : "out of memory");
    if (e->error == NULL) {
        c->is_oom = 1;
    }
    free(cause);
}

/* Reads the metadata of the other parts of a split set into E; the first is read already. */
static void read_other_parts(struct scan_ctx *c, struct model_entry *e, struct scan_file **parts,
                             uint32_t n)
{
    for (uint32_t k = 1; k < n && e->error == NULL; k++) {
        struct gguf_meta part;
        char *cause = NULL;
        if (gguf_meta_read(parts[k]->path, &part, &cause) != 0) {
            char buf[1024];
            snprintf(buf, sizeof(buf), "part %u of %u (%s): %s", k + 1, n, parts[k]->base,
                     cause != NULL ? cause : "unreadable");
            free(cause);
            set_error(c, e, strdup(buf));
            break;
        }
        if (gguf_meta_add_part(&e->meta, &part) != 0)
            set_error(c, e, strdup("out of memory"));
        gguf_meta_free(&part);
    }
}

/* Appends a model entry for file F (and, for a split set, its N_PARTS parts). */
static struct model_entry *add_entry(struct scan_ctx *c, struct scan_file **parts, uint32_t n_parts)
{
    struct model_scan_result *res = c->res;
    struct scan_file *f = parts[0];
    struct model_entry *e = &res->entries[res->n_entries];
    char *cause = NULL;
    memset(e, 0, sizeof(*e));
    e->path = strdup(f->path);
    if (e->path == NULL) {
        c->is_oom = 1;
        return NULL;
    }
    res->n_entries++;
    e->root_index = f->root_index;
    e->n_parts = n_parts;
    for (uint32_t k = 0; k < n_parts; k++) {
        e->size_bytes += parts[k]->size;
    }
    if (gguf_meta_read(f->path, &e->meta, &cause) != 0) {
        set_error(c, e, cause);
        return e;
    }
    read_other_parts(c, e, parts, n_parts);
    if (e->error != NULL) {
        gguf_meta_free(&e->meta);
        return e;
    }
    e->meta.file_bytes = e->size_bytes;
    e->has_meta = 1;
    e->caps = e->meta.caps;
    return e;
}

/* Builds the model entries from the sorted file list: split sets, singles, projectors. */
static void build_entries(struct scan_ctx *c)
{
    struct scan_file *parts[MODEL_SCAN_MAX_SPLIT_PARTS];
    for (size_t i = 0; i < c->n_files && !c->is_oom; i++) {
        struct scan_file *f = &c->files[i];
        if (f->is_mmproj || f->is_consumed) {
            continue;
        }
        if (f->split_no == 0) {
            parts[0] = f;
            struct model_entry *e = add_entry(c, parts, 1);
            /* A projector without "mmproj" in its name is recognised by its architecture. */
            if (e != NULL && e->has_meta && e->meta.architecture != NULL &&
                strcmp(e->meta.architecture, "clip") == 0) {
                c->res->n_entries--;
                gguf_meta_free(&e->meta);
                free(e->path);
                f->is_mmproj = 1;
            }
            continue;
        }
        char name[PATH_MAX];
        uint32_t missing = 0;
        for (uint32_t k = 1; k <= f->split_count; k++) {
            part_name(f, k, name, sizeof(name));
            parts[k - 1] = lookup(c, f->dir, name);
            if (parts[k - 1] == NULL && missing == 0) {
                missing = k;
            }
            if (parts[k - 1] != NULL) {
                parts[k - 1]->is_consumed = 1;
            }
        }
        if (missing != 0) {
            part_name(f, missing, name, sizeof(name));
            warnf(c, "%s/%.*s: split model skipped, part %s is missing", f->dir, (int)f->prefix_len,
                  f->base, name);
            continue;
        }
        add_entry(c, parts, f->split_count);
    }
}

/* Returns NAME without ".gguf" and without the "mmproj" word and one separator next to it,
 * lowercased, in BUF. */
static void projector_stem(const char *base, char *buf, size_t len)
{
    size_t n = strlen(base);
    if (ends_with_ci(base, ".gguf")) {
        n -= 5;
    }
    const char *m = find_ci(base, "mmproj");
    size_t out = 0;
    for (size_t i = 0; i < n && out + 1 < len; i++) {
        if (m != NULL && base + i == m) {
            size_t after = i + 6;
            int is_sep_after = after < n && strchr("-_.", base[after]) != NULL;
            int is_sep_before = out > 0 && strchr("-_.", buf[out - 1]) != NULL;
            if (is_sep_after && (is_sep_before || out == 0)) {
                after++;
            } else if (!is_sep_after && is_sep_before) {
                out--;
            }
            i = after - 1;
            continue;
        }
        buf[out++] = (char)tolower((unsigned char)base[i]);
    }
    buf[out] = '\0';
}

/* Returns the length of the common prefix of A and B, ignoring case. */
static size_t common_prefix(const char *a, const char *b)
{
    size_t n = 0;
    while (a[n] != '\0' && tolower((unsigned char)a[n]) == tolower((unsigned char)b[n])) {
        n++;
    }
    return n;
}

/*
 * Attaches projectors: within one directory, a model with no sibling models takes the
 * best-named projector whatever its name; otherwise a projector goes to the models sharing
 * the longest name prefix with it (ties: all of them, e.g. two quantisations of one model),
 * and a model takes, of the projectors that chose it, the one with the longest prefix.
 */
static void attach_projectors(struct scan_ctx *c)
{
    struct model_scan_result *res = c->res;
    char stem[PATH_MAX];
    char **dirs = calloc(res->n_entries ? res->n_entries : 1, sizeof(*dirs));
    size_t *best_score = calloc(res->n_entries ? res->n_entries : 1, sizeof(*best_score));
    if (dirs == NULL || best_score == NULL) {
        c->is_oom = 1;
        goto out;
    }
    for (size_t m = 0; m < res->n_entries; m++) {
        dirs[m] = dir_of(res->entries[m].path);
        if (dirs[m] == NULL) {
            c->is_oom = 1;
            goto out;
        }
    }
    for (size_t i = 0; i < c->n_files; i++) {
        const struct scan_file *p = &c->files[i];
        if (!p->is_mmproj) {
            continue;
        }
        projector_stem(p->base, stem, sizeof(stem));
        size_t n_in_dir = 0;
        size_t top = 0;
        for (size_t m = 0; m < res->n_entries; m++) {
            if (strcmp(dirs[m], p->dir) == 0) {
                char *base = strrchr(res->entries[m].path, '/');
                size_t s = common_prefix(stem, base != NULL ? base + 1 : res->entries[m].path);
                top = s > top ? s : top;
                n_in_dir++;
            }
        }
        if (n_in_dir == 0) {
            warnf(c, "%s: projector has no model in its directory", p->path);
            continue;
        }
        for (size_t m = 0; m < res->n_entries; m++) {
            struct model_entry *e = &res->entries[m];
            if (strcmp(dirs[m], p->dir) != 0) {
                continue;
            }
            char *base = strrchr(e->path, '/');
            size_t s = common_prefix(stem, base != NULL ? base + 1 : e->path);
            int is_chosen = n_in_dir == 1 || (s == top && s > 0);
            if (!is_chosen || (e->mmproj_path != NULL && s <= best_score[m])) {
                continue;
            }
            char *path = strdup(p->path);
            if (path == NULL) {
                c->is_oom = 1;
                goto out;
            }
            free(e->mmproj_path);
            e->mmproj_path = path;
            best_score[m] = s;
            e->caps |= GGUF_CAP_VISION;
            e->meta.caps |= e->has_meta ? GGUF_CAP_VISION : 0;
        }
    }
out:
    for (size_t m = 0; dirs != NULL && m < res->n_entries; m++) {
        free(dirs[m]);
    }
    free(dirs);
    free(best_score);
}

/* Returns whether ID is taken by one of the first N entries. */
static int id_taken(const struct model_scan_result *res, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(res->entries[i].id, id) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Compares entries by root directory then path: the order in which ids are handed out. */
static int cmp_entry_origin(const void *a, const void *b)
{
    const struct model_entry *ea = a;
    const struct model_entry *eb = b;
    if (ea->root_index != eb->root_index) {
        return ea->root_index < eb->root_index ? -1 : 1;
    }
    return strcmp(ea->path, eb->path);
}

/* Compares entries by id. */
static int cmp_entry_id(const void *a, const void *b)
{
    return strcmp(((const struct model_entry *)a)->id, ((const struct model_entry *)b)->id);
}

/* Gives every entry a unique id; a repeated id gets "-2", "-3"... in root-then-path order,
 * so the first directory listed keeps the plain name. */
static void assign_ids(struct scan_ctx *c)
{
    struct model_scan_result *res = c->res;
    if (res->n_entries > 1) {
        qsort(res->entries, res->n_entries, sizeof(*res->entries), cmp_entry_origin);
    }
    for (size_t i = 0; i < res->n_entries && !c->is_oom; i++) {
        char *id = model_scan_id_from_name(res->entries[i].path);
        if (id == NULL) {
            c->is_oom = 1;
            break;
        }
        for (unsigned k = 2; id_taken(res, i, id); k++) {
            size_t len = strlen(id) + 16;
            char *next = malloc(len);
            if (next == NULL) {
                c->is_oom = 1;
                break;
            }
            char *base = model_scan_id_from_name(res->entries[i].path);
            snprintf(next, len, "%s-%u", base != NULL ? base : "model", k);
            free(base);
            free(id);
            id = next;
        }
        res->entries[i].id = id;
    }
    if (!c->is_oom && res->n_entries > 1) {
        qsort(res->entries, res->n_entries, sizeof(*res->entries), cmp_entry_id);
    }
}

int model_scan(const char *const *dirs, size_t n_dirs, const struct model_scan_options *opts,
               struct model_scan_result **out, char **cause)
{
    struct scan_ctx c = {0};
    int rc = IG_ENOMEM;
    *out = NULL;
    c.max_depth = opts != NULL && opts->max_depth > 0 ? opts->max_depth : MODEL_SCAN_DEFAULT_DEPTH;
    if (c.max_depth > MODEL_SCAN_MAX_DEPTH) {
        c.max_depth = MODEL_SCAN_MAX_DEPTH;
    }
    c.max_files = opts != NULL && opts->max_files > 0 ? opts->max_files : MODEL_SCAN_DEFAULT_FILES;
    c.res = calloc(1, sizeof(*c.res));
    if (c.res == NULL) {
        goto out;
    }
    for (size_t r = 0; r < n_dirs && !c.is_oom; r++) {
        struct stat st;
        if (dirs[r] == NULL || stat(dirs[r], &st) != 0) {
            warnf(&c, "%s: cannot scan: %s", dirs[r] != NULL ? dirs[r] : "(null)",
                  dirs[r] != NULL ? strerror(errno) : "no path");
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            warnf(&c, "%s: cannot scan: not a directory", dirs[r]);
            continue;
        }
        if (mark_seen(&c, &st)) {
            walk(&c, dirs[r], r, 0);
        }
    }
    if (c.n_files > 1) {
        qsort(c.files, c.n_files, sizeof(*c.files), cmp_files);
    }
    if (!c.is_oom && c.n_files > 0) {
        c.res->entries = calloc(c.n_files, sizeof(*c.res->entries));
        if (c.res->entries == NULL) {
            goto out;
        }
        build_entries(&c);
        attach_projectors(&c);
        assign_ids(&c);
    }
    if (c.is_oom) {
        goto out;
    }
    *out = c.res;
    c.res = NULL;
    rc = 0;
out:
    if (rc != 0 && cause != NULL) {
        *cause = strdup("out of memory while scanning model directories");
    }
    model_scan_free(c.res);
    for (size_t i = 0; i < c.n_files; i++) {
        free(c.files[i].path);
        free(c.files[i].dir);
        free(c.files[i].base);
    }
    free(c.files);
    free(c.seen);
    return rc;
}

void model_scan_free(struct model_scan_result *result)
{
    if (result == NULL) {
        return;
    }
    for (size_t i = 0; i < result->n_entries; i++) {
        struct model_entry *e = &result->entries[i];
        free(e->id);
        free(e->path);
        free(e->mmproj_path);
        free(e->error);
        gguf_meta_free(&e->meta);
    }
    free(result->entries);
    for (size_t i = 0; i < result->n_warnings; i++) {
        free(result->warnings[i]);
    }
    free(result->warnings);
    free(result);
}

const struct model_entry *model_scan_find(const struct model_scan_result *result, const char *id)
{
    for (size_t i = 0; result != NULL && i < result->n_entries; i++) {
        if (strcmp(result->entries[i].id, id) == 0) {
            return &result->entries[i];
        }
    }
    return NULL;
}
