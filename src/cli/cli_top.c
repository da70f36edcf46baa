/*
 * `infergate top`: a live view of a running server, redrawn every second from GET /status:
 * each model's state, pid, uptime, requests in flight and waiting, and the request and token
 * rates, computed from the counters of two successive samples (requests_total,
 * completion_tokens_total; the server's own rps and tok_per_s when it reports no counters,
 * "-" when it reports neither).
 *
 * On a terminal the view uses the alternate screen with the cursor hidden and reads keys
 * unbuffered; the terminal is restored on q, Ctrl-C, Ctrl-\ (SIGQUIT), SIGTERM and SIGHUP,
 * and around Ctrl-Z.
 * Written elsewhere (a pipe, a file) each refresh is a plain frame; --once prints one frame.
 */
#include "cli.h"
#include "cli_fmt.h"
#include "cli_http.h"
#include "ig_time.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define LINE_BYTES 512
#define MAX_MODELS 4096
#define STATUS_TIMEOUT_MS 2000

static const char usage_text[] =
    "usage: infergate top [--once] [--interval SECONDS] " CLI_SERVER_USAGE "\n"
    "  keys: q quits\n";

static volatile sig_atomic_t quit_signal, stop_signal, resized;

/* SIGINT, SIGQUIT, SIGTERM, SIGHUP: leave. */
static void on_quit(int sig)
{
    quit_signal = sig;
}

/* SIGTSTP: the loop restores the terminal before stopping. */
static void on_stop(int sig)
{
    (void)sig;
    stop_signal = 1;
}

/* SIGWINCH: redraw at the new size. */
static void on_resize(int sig)
{
    (void)sig;
    resized = 1;
}

/* One line of a frame. */
struct line {
    char text[LINE_BYTES];
    bool is_header; /* drawn in reverse video on a terminal */
};

/* The view: options, terminal state and the previous sample. */
struct top {
    struct cli_server *server;
    bool is_once, is_screen, has_keys;
    long interval_ms;
    struct termios saved_tty;
    bool is_tty_changed, is_screen_on;
    json_t *prev;     /* the previous /status, or NULL */
    uint64_t prev_ms; /* when it was taken */
    struct line *lines;
    size_t n_lines, max_lines;
};

/* Appends a formatted line to T's frame (dropped when the frame is full). */
static void __attribute__((format(printf, 3, 4)))
add_line(struct top *t, bool is_header, const char *fmt, ...)
{
    va_list ap;

    if (t->n_lines >= t->max_lines)
        return;
    va_start(ap, fmt);
    vsnprintf(t->lines[t->n_lines].text, LINE_BYTES, fmt, ap);
    va_end(ap);
    t->lines[t->n_lines++].is_header = is_header;
}

/* Returns the number at KEY of OBJ, or -1 when it is absent. */
static double number_or_unknown(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    return json_is_number(v) ? json_number_value(v) : -1;
}

/* Returns the /status model entry named ID in DOC, or NULL. */
static json_t *find_model(json_t *doc, const char *id)
{
    size_t i;
    json_t *m;

    json_array_foreach(json_object_get(doc, "models"), i, m) {
        const char *mid = json_string_value(json_object_get(m, "id"));
        if (mid != NULL && strcmp(mid, id) == 0)
            return m;
    }
    return NULL;
}

/* Returns the rate of counter KEY between PREV and NOW over SECONDS, or the value of
 * FALLBACK_KEY in NOW, or -1 when neither is known. */
static double rate(json_t *now, json_t *prev, double seconds, const char *key,
                   const char *fallback_key)
{
    double a = number_or_unknown(prev, key), b = number_or_unknown(now, key);

    if (a >= 0 && b >= a && seconds > 0)
        return (b - a) / seconds;
    if (b >= 0 && prev != NULL)
        return -1; /* a counter went back: the server restarted */
    return fallback_key != NULL ? number_or_unknown(now, fallback_key) : -1;
}

/* Returns a sort rank for a state: running ones first, unloaded last. */
static int state_rank(const char *state)
{
    static const char *const order[] = {"ready", "starting", "stopping", "failed"};

    for (size_t i = 0; state != NULL && i < sizeof(order) / sizeof(order[0]); i++)
        if (strcmp(state, order[i]) == 0)
            return (int)i;
    return 9;
}

/* qsort comparison of /status models: by state rank, then id. */
static int compare_models(const void *a, const void *b)
{
    json_t *ma = *(json_t *const *)a, *mb = *(json_t *const *)b;
    int ra = state_rank(json_string_value(json_object_get(ma, "state")));
    int rb = state_rank(json_string_value(json_object_get(mb, "state")));
    const char *ia = json_string_value(json_object_get(ma, "id"));
    const char *ib = json_string_value(json_object_get(mb, "id"));

    if (ra != rb)
        return ra - rb;
    return strcmp(ia != NULL ? ia : "", ib != NULL ? ib : "");
}

/* Adds the table row of model M to the frame. */
static void add_model_row(struct top *t, json_t *m, double seconds)
{
    const char *id = json_string_value(json_object_get(m, "id"));
    json_t *prev = t->prev != NULL && id != NULL ? find_model(t->prev, id) : NULL;
    double rps = rate(m, prev, seconds, "requests_total", "rps");
    double tps = rate(m, prev, seconds, "completion_tokens_total", "tok_per_s");
    double requests = number_or_unknown(m, "requests_total");
    double tokens = number_or_unknown(m, "completion_tokens_total");
    long long pid = (long long)json_integer_value(json_object_get(m, "pid"));
    long long uptime_ms = (long long)json_integer_value(json_object_get(m, "uptime_ms"));
    long long mem = (long long)json_integer_value(json_object_get(m, "memory_bytes"));
    char pid_text[24] = "-", uptime[24] = "-", mem_text[24] = "-", rps_text[24], tps_text[24];
    char req_text[24] = "-", tok_text[24] = "-", state_text[32];
    const char *state = json_string_value(json_object_get(m, "state"));
    double progress = number_or_unknown(m, "load_progress");

    if (pid > 0)
        snprintf(pid_text, sizeof(pid_text), "%lld", pid);
    if (uptime_ms > 0)
        cli_fmt_duration((double)uptime_ms / 1000.0, uptime, sizeof(uptime));
    if (mem > 0)
        cli_fmt_bytes((uint64_t)mem, mem_text, sizeof(mem_text));
    if (requests >= 0)
        snprintf(req_text, sizeof(req_text), "%.0f", requests);
    if (tokens >= 0)
        snprintf(tok_text, sizeof(tok_text), "%.0f", tokens);
    cli_fmt_rate(rps, rps_text, sizeof(rps_text));
    cli_fmt_rate(tps, tps_text, sizeof(tps_text));
    if (state != NULL && strcmp(state, "starting") == 0 && progress >= 0)
        snprintf(state_text, sizeof(state_text), "starting %.0f%%", progress * 100);
    else
        snprintf(state_text, sizeof(state_text), "%s", state != NULL ? state : "?");
    add_line(t, false, "%-24.24s %-13s %8s %8s %6lld %6lld %7s %8s %9s %10s %9s", id ? id : "?",
             state_text, pid_text, uptime,
             (long long)json_integer_value(json_object_get(m, "in_flight")),
             (long long)json_integer_value(json_object_get(m, "waiting")), rps_text, tps_text,
             req_text, tok_text, mem_text);
}

/* Builds the frame for the sample DOC taken at NOW_MS (NULL: ERROR says why there is none). */
static void build_frame(struct top *t, json_t *doc, uint64_t now_ms, const char *error)
{
    double seconds = t->prev != NULL ? (double)(now_ms - t->prev_ms) / 1000.0 : 0;
    json_t *models = json_object_get(doc, "models"), **sorted;
    size_t n = json_array_size(models), running = 0;
    const char *version = json_string_value(json_object_get(doc, "version"));
    char uptime[24] = "-", rps_text[24], tps_text[24], clock[16] = "";
    time_t wall = time(NULL);
    struct tm tm;

    t->n_lines = 0;
    if (localtime_r(&wall, &tm) != NULL)
        strftime(clock, sizeof(clock), "%H:%M:%S", &tm);
    if (doc == NULL) {
        add_line(t, false, "infergate top - %s - %s", cli_server_url(t->server), clock);
        add_line(t, false, "%s", "");
        add_line(t, false, "%s", error != NULL ? error : "no answer");
        add_line(t, false, "retrying every %.1fs", (double)t->interval_ms / 1000.0);
        return;
    }
    if (n > MAX_MODELS)
        n = MAX_MODELS;
    for (size_t i = 0; i < n; i++)
        running += state_rank(json_string_value(json_object_get(json_array_get(models, i),
                                                                "state"))) < 3;
    cli_fmt_duration(number_or_unknown(doc, "uptime_s"), uptime, sizeof(uptime));
    cli_fmt_rate(rate(doc, t->prev, seconds, "requests_total", "rps"), rps_text,
                 sizeof(rps_text));
    cli_fmt_rate(rate(doc, t->prev, seconds, "completion_tokens_total", "tok_per_s"), tps_text,
                 sizeof(tps_text));
    add_line(t, false, "infergate %s - %s - up %s - %s", version != NULL ? version : "?",
             cli_server_url(t->server), uptime, clock);
    add_line(t, false, "models: %zu, %zu running   in flight: %lld   waiting: %lld   req/s: %s"
             "   tok/s: %s", n, running,
             (long long)json_integer_value(json_object_get(doc, "in_flight")),
             (long long)json_integer_value(json_object_get(doc, "waiting")), rps_text, tps_text);
    add_line(t, false, "%s", "");
    add_line(t, true, "%-24s %-13s %8s %8s %6s %6s %7s %8s %9s %10s %9s", "MODEL", "STATE", "PID",
             "UPTIME", "INFL", "WAIT", "REQ/S", "TOK/S", "REQUESTS", "TOKENS", "MEMORY");
    sorted = calloc(n > 0 ? n : 1, sizeof(*sorted));
    if (sorted == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        sorted[i] = json_array_get(models, i);
    qsort(sorted, n, sizeof(*sorted), compare_models);
    for (size_t i = 0; i < n; i++)
        add_model_row(t, sorted[i], seconds);
    free(sorted);
}

/* Writes the frame: over the previous one on the screen, else as plain lines. */
static void draw(struct top *t)
{
    struct winsize ws = {0};
    size_t cols = 200, rows = 1000, shown;

    if (!t->is_screen) {
        for (size_t i = 0; i < t->n_lines; i++)
            printf("%s\n", t->lines[i].text);
        if (!t->is_once)
            printf("\n");
        fflush(stdout);
        return;
    }
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
        cols = ws.ws_col;
        rows = ws.ws_row;
    }
    shown = t->n_lines < rows - 1 ? t->n_lines : rows - 1;
    printf("\033[H");
    for (size_t i = 0; i < shown; i++) {
        char *text = t->lines[i].text;
        size_t len = strlen(text);
        if (len > cols) {
            len = cols;
            while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
                len--; /* not inside a UTF-8 sequence */
        }
        printf("%s%.*s%s\033[K\r\n", t->lines[i].is_header ? "\033[7m" : "", (int)len, text,
               t->lines[i].is_header ? "\033[0m" : "");
    }
    if (shown < t->n_lines)
        printf("... %zu more (enlarge the window)\033[K\r\n", t->n_lines - shown);
    printf("\033[J\033[%zu;1H\033[2mq: quit\033[0m\033[K", rows);
    fflush(stdout);
}

/* Switches the terminal to the view: alternate screen, no cursor, keys unbuffered. */
static void screen_enter(struct top *t)
{
    if (t->has_keys && tcgetattr(STDIN_FILENO, &t->saved_tty) == 0) {
        struct termios raw = t->saved_tty;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        raw.c_cc[VMIN] = 0;
        raw.c_cc[VTIME] = 0;
        t->is_tty_changed = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    }
    printf("\033[?1049h\033[?25l\033[H\033[2J");
    fflush(stdout);
    t->is_screen_on = true;
}

/* Gives the terminal back as it was. */
static void screen_leave(struct top *t)
{
    if (t->is_screen_on) {
        printf("\033[?25h\033[?1049l");
        fflush(stdout);
        t->is_screen_on = false;
    }
    if (t->is_tty_changed) {
        tcsetattr(STDIN_FILENO, TCSANOW, &t->saved_tty);
        t->is_tty_changed = false;
    }
}

/* Waits until the next refresh is due (DUE_MS) or something must be done; returns true when
 * the view should end. */
static bool wait_for_tick(struct top *t, uint64_t due_ms)
{
    for (;;) {
        uint64_t now = ig_now_ms();
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        int n;

        if (quit_signal != 0)
            return true;
        if (stop_signal) {
            stop_signal = 0;
            screen_leave(t);
            raise(SIGSTOP);
            screen_enter(t);
            return false;
        }
        if (resized) {
            resized = 0;
            draw(t);
        }
        if (now >= due_ms)
            return false;
        n = poll(&pfd, t->has_keys ? 1 : 0, (int)(due_ms - now));
        if (n > 0 && (pfd.revents & POLLIN) != 0) {
            char keys[64];
            ssize_t got = read(STDIN_FILENO, keys, sizeof(keys));
            if (got <= 0)
                t->has_keys = false; /* EOF: stop watching stdin */
            for (ssize_t i = 0; i < got; i++)
                if (keys[i] == 'q' || keys[i] == 'Q')
                    return true;
        } else if (n > 0) {
            t->has_keys = false; /* POLLHUP or POLLERR */
        } else if (n < 0 && errno != EINTR) {
            return true;
        }
    }
}

/* Installs HANDLER for SIG without SA_RESTART, so that poll() wakes up. */
static void handle(int sig, void (*handler)(int))
{
    struct sigaction sa = {.sa_handler = handler};

    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

/* Parses ARGV into T; returns 0 or 2 after printing the problem. */
static int parse(struct top *t, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        int taken = cli_server_option(t->server, argc, argv, &i);
        char *end = NULL;
        if (taken < 0)
            return 2;
        if (taken > 0)
            continue;
        if (strcmp(argv[i], "--once") == 0) {
            t->is_once = true;
        } else if (strcmp(argv[i], "--interval") == 0 && i + 1 < argc) {
            double s = strtod(argv[++i], &end);
            if (*end != '\0' || !(s >= 0.2 && s <= 3600)) {
                fprintf(stderr, "infergate top: --interval: expected seconds from 0.2 to 3600\n");
                return 2;
            }
            t->interval_ms = (long)(s * 1000);
        } else {
            fprintf(stderr, "infergate top: unexpected argument '%s'\n%s", argv[i], usage_text);
            return 2;
        }
    }
    return 0;
}

int cli_top(int argc, char **argv)
{
    struct top t = {.server = cli_server_new(), .interval_ms = 1000};
    int rc = 2;

    if (t.server == NULL)
        return 1;
    if (parse(&t, argc, argv) != 0)
        goto out;
    t.is_screen = !t.is_once && isatty(STDOUT_FILENO) == 1;
    t.has_keys = t.is_screen && isatty(STDIN_FILENO) == 1;
    t.max_lines = MAX_MODELS + 16;
    t.lines = calloc(t.max_lines, sizeof(*t.lines));
    rc = 1;
    if (t.lines == NULL)
        goto out;
    handle(SIGINT, on_quit);
    handle(SIGQUIT, on_quit); /* Ctrl-\: its default would dump core with the screen raw */
    handle(SIGTERM, on_quit);
    handle(SIGHUP, on_quit);
    if (t.is_screen) {
        handle(SIGTSTP, on_stop);
        handle(SIGWINCH, on_resize);
        screen_enter(&t);
    }
    for (;;) {
        uint64_t now_ms = ig_now_ms();
        json_t *doc = NULL;
        char *cause = NULL;
        long status = 0;
        int got = cli_server_get_json(t.server, "/status", STATUS_TIMEOUT_MS, &doc, &status,
                                      &cause);

        build_frame(&t, got == 0 ? doc : NULL, now_ms, cause);
        draw(&t);
        free(cause);
        if (got == 0) {
            json_decref(t.prev);
            t.prev = doc;
            t.prev_ms = now_ms;
        }
        if (t.is_once) {
            rc = got == 0 ? 0 : 1;
            break;
        }
        if (wait_for_tick(&t, now_ms + (uint64_t)t.interval_ms)) {
            rc = 0;
            break;
        }
    }
out:
    screen_leave(&t);
    json_decref(t.prev);
    free(t.lines);
    cli_server_free(t.server);
    return rc;
}
