/* Unit tests for src/models/model_scan: walk, split sets, projectors, ids, unreadable files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_scan.h"
#include "test_gguf_writer.h"

/* The temporary tree of one test. */
struct tree {
    char root[64];
};

/* Creates ROOT/REL (and its parent directories). */
static void mkdirs(const struct tree *t, const char *rel)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", t->root, rel);
    for (char *p = path + strlen(t->root) + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0700);
            *p = '/';
        }
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        fail_msg("mkdir %s: %s", path, strerror(errno));
    }
}

/* Writes the model SPEC at ROOT/REL. */
static void put_model(const struct tree *t, const char *rel, const struct tw_model *spec)
{
    struct tw_buf buf = {0};
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", t->root, rel);
    tw_model_file(&buf, spec);
    assert_int_equal(tw_write(path, buf.d, buf.len), 0);
    free(buf.d);
}

/* Writes raw bytes at ROOT/REL. */
static void put_raw(const struct tree *t, const char *rel, const char *data)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", t->root, rel);
    assert_int_equal(tw_write(path, data, strlen(data)), 0);
}

/* Returns the size of ROOT/REL. */
static uint64_t size_of(const struct tree *t, const char *rel)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", t->root, rel);
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int tree_setup(void **state)
{
    struct tree *t = calloc(1, sizeof(*t));
    snprintf(t->root, sizeof(t->root), "/tmp/test_model_scan_XXXXXX");
    if (t == NULL || mkdtemp(t->root) == NULL) {
        return -1;
    }
    *state = t;
    return 0;
}

static int tree_teardown(void **state)
{
    struct tree *t = *state;
    nftw(t->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(t);
    return 0;
}

/* Scans ROOT/REL (one directory) and returns the result. */
static struct model_scan_result *scan_one(const struct tree *t, const char *rel, int max_depth)
{
    char path[512];
    const char *dirs[1] = {path};
    struct model_scan_options opts = {.max_depth = max_depth};
    struct model_scan_result *res = NULL;
    char *cause = NULL;
    snprintf(path, sizeof(path), "%s%s%s", t->root, rel[0] ? "/" : "", rel);
    assert_int_equal(model_scan(dirs, 1, &opts, &res, &cause), 0);
    assert_null(cause);
    assert_non_null(res);
    return res;
}

/* Returns whether some warning contains WANT. */
static int has_warning(const struct model_scan_result *res, const char *want)
{
    for (size_t i = 0; i < res->n_warnings; i++) {
        if (strstr(res->warnings[i], want) != NULL) {
            return 1;
        }
    }
    return 0;
}

static void test_scan_finds_models_recursively_sorted_by_id(void **state)
{
    struct tree *t = *state;
    mkdirs(t, "a/b/c");
    put_model(t, "zeta.gguf", &tw_default_model);
    put_model(t, "a/b/c/alpha.GGUF", &tw_default_model);
    put_model(t, "a/mid.gguf", &tw_default_model);
    put_raw(t, "a/readme.txt", "not a model");
    struct model_scan_result *res = scan_one(t, "", 0);
    assert_int_equal(res->n_entries, 3);
    assert_string_equal(res->entries[0].id, "alpha");
    assert_string_equal(res->entries[1].id, "mid");
    assert_string_equal(res->entries[2].id, "zeta");
    const struct model_entry *e = model_scan_find(res, "zeta");
    assert_non_null(e);
    assert_true(e->has_meta);
    assert_null(e->error);
    assert_int_equal(e->n_parts, 1);
    assert_int_equal(e->size_bytes, size_of(t, "zeta.gguf"));
    assert_int_equal(e->meta.file_bytes, e->size_bytes);
    assert_string_equal(e->meta.architecture, "llama");
    assert_int_equal(e->caps, GGUF_CAP_COMPLETION);
    assert_null(e->mmproj_path);
    assert_non_null(strstr(e->path, "/zeta.gguf"));
    assert_null(model_scan_find(res, "nope"));
    assert_int_equal(res->n_warnings, 0);
    model_scan_free(res);
}

static void test_scan_respects_depth_cap_and_skips_hidden(void **state)
{
    struct tree *t = *state;
    mkdirs(t, "d1/d2/d3");
    mkdirs(t, ".hidden");
    put_model(t, "d1/d2/d3/deep.gguf", &tw_default_model);
    put_model(t, "d1/shallow.gguf", &tw_default_model);
    put_model(t, ".hidden/secret.gguf", &tw_default_model);
    struct model_scan_result *res = scan_one(t, "", 2);
    assert_int_equal(res->n_entries, 1);
    assert_string_equal(res->entries[0].id, "shallow");
    model_scan_free(res);
    res = scan_one(t, "", 3);
    assert_int_equal(res->n_entries, 2);
    model_scan_free(res);
}

static void test_scan_survives_symlink_loops_and_follows_file_links(void **state)
{
    struct tree *t = *state;
    char target[512];
    char link[512];
    mkdirs(t, "m/blobs");
    mkdirs(t, "m/snap");
    put_model(t, "m/blobs/sha256-abc.gguf.blob", &tw_default_model);
    snprintf(target, sizeof(target), "%s/m/blobs/sha256-abc.gguf.blob", t->root);
    snprintf(link, sizeof(link), "%s/m/snap/linked.gguf", t->root);
    assert_int_equal(symlink(target, link), 0);
    snprintf(link, sizeof(link), "%s/m/snap/loop", t->root);
    assert_int_equal(symlink("..", link), 0);
    snprintf(link, sizeof(link), "%s/m/self", t->root);
    assert_int_equal(symlink(".", link), 0);
    snprintf(link, sizeof(link), "%s/m/dangling.gguf", t->root);
    assert_int_equal(symlink("/nonexistent/x.gguf", link), 0);
    struct model_scan_result *res = scan_one(t, "", MODEL_SCAN_MAX_DEPTH);
    assert_int_equal(res->n_entries, 1);
    assert_string_equal(res->entries[0].id, "linked");
    assert_true(res->entries[0].has_meta);
    assert_true(has_warning(res, "dangling.gguf"));
    model_scan_free(res);
}

static void test_scan_joins_split_parts(void **state)
{
    struct tree *t = *state;
    struct tw_model spec = tw_default_model;
    spec.split_count = 3;
    put_model(t, "big-00001-of-00003.gguf", &spec);
    spec.tensors_only = 1;
    spec.split_no = 1;
    put_model(t, "big-00002-of-00003.gguf", &spec);
    spec.split_no = 2;
    put_model(t, "big-00003-of-00003.gguf", &spec);
    struct model_scan_result *res = scan_one(t, "", 0);
    assert_int_equal(res->n_entries, 1);
    const struct model_entry *e = &res->entries[0];
    assert_string_equal(e->id, "big");
    assert_int_equal(e->n_parts, 3);
    assert_non_null(strstr(e->path, "big-00001-of-00003.gguf"));
    assert_int_equal(e->size_bytes, size_of(t, "big-00001-of-00003.gguf") +
                                        size_of(t, "big-00002-of-00003.gguf") +
                                        size_of(t, "big-00003-of-00003.gguf"));
    assert_int_equal(e->meta.file_bytes, e->size_bytes);
    assert_int_equal(e->meta.split_count, 3);
    assert_int_equal(e->meta.n_params, 6208 + 2 * (1024 + 64));
    assert_int_equal(e->meta.weight_bytes, 6784 + 2 * (1088 + 256));
    assert_int_equal(e->meta.block_count, 2);
    assert_int_equal(res->n_warnings, 0);
    model_scan_free(res);
}

static void test_scan_skips_split_set_with_missing_part(void **state)
{
    struct tree *t = *state;
    struct tw_model spec = tw_default_model;
    spec.split_count = 3;
    put_model(t, "half-00001-of-00003.gguf", &spec);
    spec.tensors_only = 1;
    spec.split_no = 2;
    put_model(t, "half-00003-of-00003.gguf", &spec);
    spec.split_no = 1;
    spec.split_count = 2;
    put_model(t, "tail-00002-of-00002.gguf", &spec);
    put_model(t, "whole.gguf", &tw_default_model);
    struct model_scan_result *res = scan_one(t, "", 0);
    assert_int_equal(res->n_entries, 1);
    assert_string_equal(res->entries[0].id, "whole");
    assert_int_equal(res->n_warnings, 2);
    assert_true(has_warning(res, "half: split model skipped, part half-00002-of-00003.gguf"));
    assert_true(has_warning(res, "tail: split model skipped, part tail-00001-of-00002.gguf"));
    model_scan_free(res);
}

static void test_scan_reports_a_bad_part_of_a_split_set(void **state)
{
    struct tree *t = *state;
    struct tw_model spec = tw_default_model;
    spec.split_count = 2;
    put_model(t, "s-00001-of-00002.gguf", &spec);
    put_raw(t, "s-00002-of-00002.gguf", "GGUF garbage");
    struct model_scan_result *res = scan_one(t, "", 0);
    assert_int_equal(res->n_entries, 1);
    assert_false(res->entries[0].has_meta);
    assert_non_null(strstr(res->entries[0].error, "part 2 of 2"));
    assert_null(res->entries[0].meta.architecture);
    model_scan_free(res);
}

static void test_scan_attaches_projector_by_name_prefix(void **state)
{
    struct tree *t = *state;
    mkdirs(t, "vis");
    put_model(t, "vis/gemma-3-4b-it-Q4_K_M.gguf", &tw_default_model);
    put_model(t, "vis/gemma-3-4b-it-Q8_0.gguf", &tw_default_model);
    put_model(t, "vis/llama-3.2-1b.gguf", &tw_default_model);
    put_model(t, "vis/mmproj-gemma-3-4b-it-f16.gguf", &tw_default_model);
    struct model_scan_result *res = scan_one(t, "", 0);
    assert_int_equal(res->n_entries, 3);
    for (size_t i = 0; i < 2; i++) {
        const struct model_entry *e = &res->entries[i];
        assert_non_null(strstr(e->id, "gemma-3-4b-it"));
        assert_non_null(e->mmproj_path);
        assert_non_null(strstr(e->mmproj_path, "vis/mmproj-gemma-3-4b-it-f16.gguf"));
        assert_int_equal(e->caps, GGUF_CAP_COMPLETION | GGUF_CAP_VISION);
        assert_true(e->meta.caps & GGUF_CAP_VISION);
    }
    const struct model_entry *llama = model_scan_find(res, "llama-3.2-1b");
    assert_non_null(llama);
    assert_null(llama->mmproj_path);
    assert_int_equal(llama->caps, GGUF_CAP_COMPLETION);
    model_scan_free(res);
}

static void test_scan_picks_best_of_several_projectors(void **state)
{
    struct tree *t = *state;
    put_model(t, "qwen2.5-vl-7b-Q4.gguf", &tw_default_model);
    put_model(t, "gemma-3-4b-Q4.gguf", &tw_default_model);
    put_model(t, "qwen2.5-vl-7b-mmproj-f16.gguf", &tw_default_model);
    put_model(t, "mmproj-gemma-3-4b-f16.gguf", &tw_default_model);
    struct model_scan_result *res = scan_one(t, "", 0);
    assert_int_equal(res->n_entries, 2);
    const struct model_entry *q = model_scan_find(res, "qwen2.5-vl-7b-Q4");
    const struct model_entry *g = model_scan_find(res, "gemma-3-4b-Q4");
    assert_non_null(q);
    assert_non_null(g);
    assert_non_null(strstr(q->mmproj_path, "qwen2.5-vl-7b-mmproj-f16.gguf"));
    assert_non_null(strstr(g->mmproj_path, "mmproj-gemma-3-4b-f16.gguf"));
    model_scan_free(res);
}

static void test_scan_attaches_projector_to_lone_model(void **state)
{
    struct tree *t = *state;
    struct tw_model clip = tw_default_model;
    mkdirs(t, "solo");
    mkdirs(t, "other");
    put_model(t, "solo/model.gguf", &tw_default_model);
    put_model(t, "solo/mmproj-F16.gguf", &tw_default_model);
    clip.arch = "clip";
    put_model(t, "other/weights.gguf", &tw_default_model);
    put_model(t, "other/projector.gguf", &clip); /* recognised by its architecture */
    struct model_scan_result *res = scan_one(t, "", 0);
    assert_int_equal(res->n_entries, 2);
    const struct model_entry *m = model_scan_find(res, "model");
    assert_non_null(m);
    assert_non_null(strstr(m->mmproj_path, "solo/mmproj-F16.gguf"));
    assert_true(m->caps & GGUF_CAP_VISION);
    const struct model_entry *w = model_scan_find(res, "weights");
    assert_non_null(w);
    assert_non_null(strstr(w->mmproj_path, "other/projector.gguf"));
    model_scan_free(res);
}

static void test_scan_gives_duplicate_ids_numeric_suffixes(void **state)
{
    struct tree *t = *state;
    char a[512];
    char b[512];
    const char *dirs[2] = {a, b};
    struct model_scan_result *res = NULL;
    char *cause = NULL;
    mkdirs(t, "A/sub");
    mkdirs(t, "B");
    put_model(t, "A/x.gguf", &tw_default_model);
    put_model(t, "A/sub/x.gguf", &tw_default_model);
    put_model(t, "B/x.gguf", &tw_default_model);
    put_model(t, "B/My Model (Q4).gguf", &tw_default_model);
    snprintf(a, sizeof(a), "%s/B", t->root);
    snprintf(b, sizeof(b), "%s/A/", t->root);
    for (int round = 0; round < 2; round++) {
        assert_int_equal(model_scan(dirs, 2, NULL, &res, &cause), 0);
        assert_int_equal(res->n_entries, 4);
        assert_string_equal(res->entries[0].id, "My-Model--Q4-");
        assert_string_equal(res->entries[1].id, "x");
        assert_non_null(strstr(res->entries[1].path, "/B/x.gguf")); /* first directory wins */
        assert_int_equal(res->entries[1].root_index, 0);
        assert_string_equal(res->entries[2].id, "x-2");
        assert_non_null(strstr(res->entries[2].path, "/A/sub/x.gguf"));
        assert_string_equal(res->entries[3].id, "x-3");
        assert_non_null(strstr(res->entries[3].path, "/A/x.gguf"));
        model_scan_free(res);
    }
}

static void test_scan_lists_unreadable_files_with_reason(void **state)
{
    struct tree *t = *state;
    put_raw(t, "broken.gguf", "this is not gguf at all");
    put_raw(t, "empty.gguf", "");
    put_model(t, "good.gguf", &tw_default_model);
    struct model_scan_result *res = scan_one(t, "", 0);
    assert_int_equal(res->n_entries, 3);
    const struct model_entry *e = model_scan_find(res, "broken");
    assert_non_null(e);
    assert_false(e->has_meta);
    assert_string_equal(e->error, "not a GGUF file (bad magic)");
    assert_int_equal(e->caps, 0);
    e = model_scan_find(res, "empty");
    assert_non_null(e);
    assert_non_null(strstr(e->error, "truncated"));
    assert_true(model_scan_find(res, "good")->has_meta);
    model_scan_free(res);
}

static void test_scan_warns_about_missing_directories(void **state)
{
    struct tree *t = *state;
    char missing[512];
    char file[512];
    const char *dirs[3] = {missing, file, NULL};
    struct model_scan_result *res = NULL;
    char *cause = NULL;
    put_raw(t, "plain.txt", "x");
    snprintf(missing, sizeof(missing), "%s/nope", t->root);
    snprintf(file, sizeof(file), "%s/plain.txt", t->root);
    assert_int_equal(model_scan(dirs, 3, NULL, &res, &cause), 0);
    assert_int_equal(res->n_entries, 0);
    assert_int_equal(res->n_warnings, 3);
    assert_true(has_warning(res, "nope: cannot scan: No such file or directory"));
    assert_true(has_warning(res, "plain.txt: cannot scan: not a directory"));
    model_scan_free(res);
    model_scan_free(NULL);
}

static void test_scan_caps_the_number_of_files(void **state)
{
    struct tree *t = *state;
    char root[512];
    const char *dirs[1] = {root};
    struct model_scan_options opts = {.max_files = 3};
    struct model_scan_result *res = NULL;
    char *cause = NULL;
    for (int i = 0; i < 5; i++) {
        char rel[32];
        snprintf(rel, sizeof(rel), "m%d.gguf", i);
        put_raw(t, rel, "junk");
    }
    snprintf(root, sizeof(root), "%s", t->root);
    assert_int_equal(model_scan(dirs, 1, &opts, &res, &cause), 0);
    assert_int_equal(res->n_entries, 3);
    assert_true(has_warning(res, "stopped after 3"));
    model_scan_free(res);
}

static void test_scan_id_from_name(void **state)
{
    static const char *const cases[][2] = {
        {"/models/Llama-3.2-1B-Instruct-Q4_K_M.gguf", "Llama-3.2-1B-Instruct-Q4_K_M"},
        {"qwen-00001-of-00002.gguf", "qwen"},
        {"a b/c d.gguf", "c-d"},
        {"weird:name?#.gguf", "weird-name--"},
        {".gguf", "model"},
        {"noext", "noext"},
        {"x-00003-of-00002.gguf", "x-00003-of-00002"}, /* not a valid split name */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *id = model_scan_id_from_name(cases[i][0]);
        assert_non_null(id);
        assert_string_equal(id, cases[i][1]);
        free(id);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_scan_finds_models_recursively_sorted_by_id, tree_setup,
                                        tree_teardown),
        cmocka_unit_test_setup_teardown(test_scan_respects_depth_cap_and_skips_hidden, tree_setup,
                                        tree_teardown),
        cmocka_unit_test_setup_teardown(test_scan_survives_symlink_loops_and_follows_file_links,
                                        tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_scan_joins_split_parts, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_scan_skips_split_set_with_missing_part, tree_setup,
                                        tree_teardown),
        cmocka_unit_test_setup_teardown(test_scan_reports_a_bad_part_of_a_split_set, tree_setup,
                                        tree_teardown),
        cmocka_unit_test_setup_teardown(test_scan_attaches_projector_by_name_prefix, tree_setup,
                                        tree_teardown),
        cmocka_unit_test_setup_teardown(test_scan_picks_best_of_several_projectors, tree_setup,
                                        tree_teardown),
        cmocka_unit_test_setup_teardown(test_scan_attaches_projector_to_lone_model, tree_setup,
                                        tree_teardown),
        cmocka_unit_test_setup_teardown(test_scan_gives_duplicate_ids_numeric_suffixes, tree_setup,
                                        tree_teardown),
        cmocka_unit_test_setup_teardown(test_scan_lists_unreadable_files_with_reason, tree_setup,
                                        tree_teardown),
        cmocka_unit_test_setup_teardown(test_scan_warns_about_missing_directories, tree_setup,
                                        tree_teardown),
        cmocka_unit_test_setup_teardown(test_scan_caps_the_number_of_files, tree_setup,
                                        tree_teardown),
        cmocka_unit_test(test_scan_id_from_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
