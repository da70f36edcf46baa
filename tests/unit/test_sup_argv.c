/* Unit tests for sup_argv: shell-like splitting without expansion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sup_argv.h"

#include <stdlib.h>
#include <string.h>

/* Splits LINE and checks the words against the NULL-terminated WANT list. */
static void expect_words(const char *line, const char *const *want)
{
    char **argv = NULL, *cause = NULL;
    int argc = -1, n = 0;

    assert_int_equal(sup_argv_split(line, &argv, &argc, &cause), 0);
    assert_null(cause);
    while (want[n] != NULL)
        n++;
    assert_int_equal(argc, n);
    for (int i = 0; i < n; i++)
        assert_string_equal(argv[i], want[i]);
    assert_null(argv[argc]);
    sup_argv_free(argv);
}

/* Checks that LINE is rejected with REASON. */
static void expect_invalid(const char *line, const char *reason)
{
    char **argv = NULL, *cause = NULL;
    int argc = -1;

    assert_int_equal(sup_argv_split(line, &argv, &argc, &cause), IG_EINVAL);
    assert_null(argv);
    assert_int_equal(argc, 0);
    assert_string_equal(cause, reason);
    free(cause);
}

static void test_sup_argv_splits_on_whitespace(void **state)
{
    (void)state;
    expect_words("a  b\tc\nd\r\n e ", (const char *const[]){"a", "b", "c", "d", "e", NULL});
}

static void test_sup_argv_single_quotes_are_literal(void **state)
{
    (void)state;
    expect_words("x 'a b \\n $HOME \"q\"'",
                 (const char *const[]){"x", "a b \\n $HOME \"q\"", NULL});
}

static void test_sup_argv_double_quotes_allow_escapes(void **state)
{
    (void)state;
    expect_words("\"a \\\" \\\\ \\$ \\` \\n b\"", (const char *const[]){"a \" \\ $ ` \\n b", NULL});
}

static void test_sup_argv_empty_quotes_give_empty_word(void **state)
{
    (void)state;
    expect_words("cmd '' \"\" x", (const char *const[]){"cmd", "", "", "x", NULL});
}

static void test_sup_argv_adjacent_parts_join(void **state)
{
    (void)state;
    expect_words("--model='my file'.gguf a\"b\"'c'",
                 (const char *const[]){"--model=my file.gguf", "abc", NULL});
}

static void test_sup_argv_backslash_outside_quotes(void **state)
{
    (void)state;
    expect_words("a\\ b c\\\nd \\'x \\", (const char *const[]){"a b", "cd", "'x", NULL});
    expect_words("one \\\n two", (const char *const[]){"one", "two", NULL});
    expect_words("\"x\\\ny\"", (const char *const[]){"xy", NULL});
}

static void test_sup_argv_no_expansion(void **state)
{
    (void)state;
    expect_words("echo $HOME ~ *.gguf ${PORT} `id` $(id) ; | &",
                 (const char *const[]){"echo", "$HOME", "~", "*.gguf", "${PORT}", "`id`", "$(id)",
                                       ";", "|", "&", NULL});
}

static void test_sup_argv_rejects_unterminated_quotes(void **state)
{
    (void)state;
    expect_invalid("a 'b", "unterminated quote in command line");
    expect_invalid("a \"b\\\"", "unterminated quote in command line");
}

static void test_sup_argv_rejects_empty_command(void **state)
{
    (void)state;
    expect_invalid("", "empty command line");
    expect_invalid("  \n\t ", "empty command line");
    expect_invalid("\\\n", "empty command line");
}

static void test_sup_argv_free_null_is_noop(void **state)
{
    (void)state;
    sup_argv_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sup_argv_splits_on_whitespace),
        cmocka_unit_test(test_sup_argv_single_quotes_are_literal),
        cmocka_unit_test(test_sup_argv_double_quotes_allow_escapes),
        cmocka_unit_test(test_sup_argv_empty_quotes_give_empty_word),
        cmocka_unit_test(test_sup_argv_adjacent_parts_join),
        cmocka_unit_test(test_sup_argv_backslash_outside_quotes),
        cmocka_unit_test(test_sup_argv_no_expansion),
        cmocka_unit_test(test_sup_argv_rejects_unterminated_quotes),
        cmocka_unit_test(test_sup_argv_rejects_empty_command),
        cmocka_unit_test(test_sup_argv_free_null_is_noop),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
