/*
 * `infergate pull URL`: downloads a model file.
 *
 * The bytes go to FILE.part, locked while a pull writes it. A FILE.part left by an earlier
 * pull is resumed with a Range request; a server that answers the whole file instead (200)
 * or refuses the range (416) makes the pull start over from byte 0. When the transfer ends
 * the size is checked against the server's, the sha256 (always computed, checked with
 * --sha256) too, then the file is synced and renamed into place, so FILE is either absent
 * or complete. A checksum mismatch removes FILE.part: resuming it could only fail again.
 * The server's validator of the file (a strong ETag, else Last-Modified) is kept beside it
 * in FILE.part.validator and sent as If-Range on a resume, so a file that changed on the
 * server since comes whole (200) instead of its tail being appended to the old bytes.
 *
 * Progress goes to stdout: a bar redrawn in place when it is a terminal, else a line every
 * 10% or 5 seconds.
 */
#include "cli.h"
#include "ig_text.h"
#include "cli_fmt.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "ig_time.h"

#define CONNECT_TIMEOUT_S 30L
#define STALL_TIMEOUT_S 60L /* abort when less than 1 byte/s arrives for this long */
#define MAX_REDIRECTS 10L
#define BAR_EVERY_MS 200
#define LINE_EVERY_MS 5000
#define BAR_WIDTH 24
#define READ_CHUNK (1u << 20)
#define VALIDATOR_MAX 200 /* longer ETags are not kept: the resume goes without If-Range */

static const char usage_text[] =
    "usage: infergate pull URL [-o FILE | --models-dir DIR] [--sha256 HEX] [--force]\n";

static volatile sig_atomic_t interrupted;

/* SIGINT, SIGTERM: stop, keeping FILE.part for a later resume. */
static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* One pull. */
struct pull {
    const char *url, *expected_sha256;
    char path[PATH_MAX], part[PATH_MAX + 8]; /* part: path + ".part" */
    char validator_path[PATH_MAX + 24];      /* part + ".validator" */
    char sent_validator[VALIDATOR_MAX + 1];  /* If-Range of this transfer, "" if none */
    char etag[VALIDATOR_MAX + 1], last_modified[VALIDATOR_MAX + 1]; /* of the last head */
    bool has_weak_etag;                      /* the last head's ETag is weak: no If-Range */
    bool is_changed;                         /* a 206 of another version: start over */
    bool is_force, is_tty;
    bool is_locked; /* FILE.part is ours: a failure may remove it when it is empty */
    int fd;
    CURL *easy;
    EVP_MD_CTX *sha;
    uint64_t offset;     /* bytes in FILE.part when this transfer started */
    uint64_t written;    /* bytes of this transfer written */
    int64_t total;       /* the whole file's size, -1 while unknown */
    long status;         /* of the last response head */
    int64_t range_start; /* Content-Range start of a 206, -1 if none */
    int64_t range_total; /* Content-Range total (also of a 416), -1 if none */
    bool has_started;    /* the first body byte of this transfer was handled */
    char *failure;       /* why the write callback stopped the transfer (caller frees) */
    uint64_t start_ms, last_shown_ms;
    int last_decile;
};

/* Records the first failure of P (formatted like printf). */
static void __attribute__((format(printf, 2, 3))) fail(struct pull *p, const char *fmt, ...)
{
    va_list ap;
    char text[512];

    if (p->failure != NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    p->failure = strdup(text);
}

/* Empties FILE.part and the hash, for a download from byte 0. */
static int start_over(struct pull *p)
{
    if (ftruncate(p->fd, 0) != 0 || lseek(p->fd, 0, SEEK_SET) != 0 ||
        EVP_DigestInit_ex(p->sha, EVP_sha256(), NULL) != 1)
        return -1;
    p->offset = 0;
    return 0;
}

/* Hashes the bytes already in FILE.part; returns 0 or -1. */
static int hash_existing(struct pull *p)
{
    char *buf = malloc(READ_CHUNK);
    uint64_t done = 0;
    int rc = -1;

    if (buf == NULL || lseek(p->fd, 0, SEEK_SET) != 0)
        goto out;
    while (done < p->offset) {
        ssize_t n = read(p->fd, buf, READ_CHUNK);
        if (n <= 0 || EVP_DigestUpdate(p->sha, buf, (size_t)n) != 1)
            goto out;
        done += (uint64_t)n;
    }
    rc = done == p->offset && lseek(p->fd, (off_t)p->offset, SEEK_SET) >= 0 ? 0 : -1;
out:
    free(buf);
    return rc;
}

/* Copies the header value TEXT (after the colon) into OUT without the spaces around it;
 * "" when it does not fit or holds a control character. */
static void header_value(const char *text, char *out, size_t size)
{
    size_t len;

    text += strspn(text, " \t");
    len = strcspn(text, "\r\n");
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t'))
        len--;
    out[0] = '\0';
    if (len >= size)
        return;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
            return;
    memcpy(out, text, len);
    out[len] = '\0';
}

/* Returns the validator of the last response head for If-Range: its strong ETag, else its
 * Last-Modified when it has no ETag at all (RFC 9110 13.1.5), else "". */
static const char *response_validator(const struct pull *p)
{
    if (p->etag[0] != '\0')
        return p->etag;
    return p->has_weak_etag ? "" : p->last_modified;
}

/* Writes the validator of the response now coming to FILE.part.validator (none: the file
 * is removed). */
static void save_validator(const struct pull *p)
{
    const char *v = response_validator(p);
    int fd;

    unlink(p->validator_path); /* an old one must not outlive a failed write */
    if (v[0] == '\0')
        return;
    fd = open(p->validator_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return; /* the next resume goes without If-Range */
    if (write(fd, v, strlen(v)) != (ssize_t)strlen(v))
        (void)ftruncate(fd, 0);
    close(fd);
}

/* Reads FILE.part.validator (if an earlier pull left one) into P->sent_validator. */
static void load_validator(struct pull *p)
{
    char text[VALIDATOR_MAX + 2];
    int fd = open(p->validator_path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;

    p->sent_validator[0] = '\0';
    if (fd >= 0)
        close(fd);
    if (n <= 0 || n > VALIDATOR_MAX)
        return;
    text[n] = '\0';
    header_value(text, p->sent_validator, sizeof(p->sent_validator));
}

/* libcurl header callback: the status, Content-Range and validators of each response head. */
static size_t on_header(char *bytes, size_t size, size_t n, void *arg)
{
    struct pull *p = arg;
    size_t len = size * n;
    char line[256];
    long long a, b, total;

    if (len >= sizeof(line))
        return len;
    memcpy(line, bytes, len);
    line[len] = '\0';
    if (strncmp(line, "HTTP/", 5) == 0) {
        const char *sp = strchr(line, ' ');
        p->status = sp != NULL ? strtol(sp + 1, NULL, 10) : 0;
        p->range_start = -1;
        p->range_total = -1;
        p->etag[0] = p->last_modified[0] = '\0';
        p->has_weak_etag = false;
    } else if (strncasecmp(line, "ETag:", 5) == 0) {
        header_value(line + 5, p->etag, sizeof(p->etag));
        if (strncmp(p->etag, "W/", 2) == 0) { /* not usable with If-Range, nor is a date then */
            p->etag[0] = '\0';
            p->has_weak_etag = true;
        }
    } else if (strncasecmp(line, "Last-Modified:", 14) == 0) {
        header_value(line + 14, p->last_modified, sizeof(p->last_modified));
    } else if (strncasecmp(line, "Content-Range:", 14) == 0) {
        if (sscanf(line + 14, " bytes %lld-%lld/%lld", &a, &b, &total) == 3) {
            p->range_start = a;
            p->range_total = total;
        } else if (sscanf(line + 14, " bytes */%lld", &total) == 1) {
            p->range_total = total;
        }
    }
    return len;
}

/* Decides what the first body bytes of a response mean; returns false to stop. */
static bool on_first_bytes(struct pull *p)
{
    curl_off_t length = -1;
    struct statvfs vfs;

    p->has_started = true;
    curl_easy_getinfo(p->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
    if (p->status == 200 && p->offset > 0) {
        /* The server ignored the Range, or the file changed (If-Range did not match): what
         * comes is the whole file. */
        if (p->sent_validator[0] != '\0' && strcmp(p->sent_validator, response_validator(p)) != 0)
            printf("the file changed on the server since the last attempt: starting over\n");
        else
            printf("the server does not resume downloads: starting over\n");
        if (start_over(p) != 0) {
            fail(p, "cannot empty %s: %s", p->part, strerror(errno));
            return false;
        }
    } else if (p->status == 206 && p->sent_validator[0] != '\0' &&
               response_validator(p)[0] != '\0' &&
               strcmp(p->sent_validator, response_validator(p)) != 0) {
        /* A server that ignores If-Range: the rest of another version of the file. */
        printf("the file changed on the server since the last attempt: starting over\n");
        p->is_changed = true;
        return false;
    } else if (p->status == 206 && (p->range_start < 0 || (uint64_t)p->range_start != p->offset)) {
        fail(p, "the server sent a range starting at %lld, not %llu", (long long)p->range_start,
             (unsigned long long)p->offset);
        return false;
    } else if (p->status == 416) {
        return false; /* the caller looks at the range the server has */
    } else if (p->status != 200 && p->status != 206) {
        fail(p, "HTTP %ld from %s", p->status, p->url);
        return false;
    }
    if (p->status == 206 && p->range_total >= 0)
        p->total = p->range_total;
    else if (length >= 0)
        p->total = (int64_t)p->offset + length;
    if (p->total >= 0 && fstatvfs(p->fd, &vfs) == 0 &&
        (uint64_t)vfs.f_bavail * vfs.f_frsize < (uint64_t)p->total - p->offset) {
        char need[32], have[32];
        cli_fmt_bytes((uint64_t)p->total - p->offset, need, sizeof(need));
        cli_fmt_bytes((uint64_t)vfs.f_bavail * vfs.f_frsize, have, sizeof(have));
        fail(p, "not enough disk space for %s: %s more needed, %s free", p->path, need, have);
        return false;
    }
    if (p->status == 200 || p->sent_validator[0] == '\0')
        save_validator(p); /* a 206 is of the file the kept validator names */
    return true;
}

/* libcurl write callback: bytes to FILE.part and the hash. */
static size_t on_body(char *bytes, size_t size, size_t n, void *arg)
{
    struct pull *p = arg;
    size_t len = size * n, done = 0;

    if (!p->has_started && !on_first_bytes(p))
        return 0;
    while (done < len) {
        ssize_t w = write(p->fd, bytes + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            fail(p, "cannot write %s: %s", p->part, strerror(errno));
            return 0;
        }
        done += (size_t)w;
    }
    if (EVP_DigestUpdate(p->sha, bytes, len) != 1) {
        fail(p, "sha256 failed");
        return 0;
    }
    p->written += len;
    return len;
}

/* Returns whether progress at PERCENT (-1: unknown) is to be shown at NOW. */
static bool is_progress_due(const struct pull *p, uint64_t now, int percent, bool is_final)
{
    if (p->is_tty)
        return is_final || now - p->last_shown_ms >= BAR_EVERY_MS;
    if (percent >= 0 && percent / 10 > p->last_decile)
        return true;
    return !is_final && now - p->last_shown_ms >= LINE_EVERY_MS;
}

/* Shows the progress of P: a bar on a terminal, else a line every 10% or LINE_EVERY_MS;
 * IS_FINAL for the last one. */
static void show_progress(struct pull *p, bool is_final)
{
    uint64_t now = ig_now_ms(), have = p->offset + p->written;
    double elapsed_s = (double)(now - p->start_ms) / 1000.0;
    double rate = elapsed_s > 0 ? (double)p->written / elapsed_s : 0;
    int percent = p->total > 0 ? (int)(have * 100 / (uint64_t)p->total) : -1;
    char have_text[32], total_text[32] = "?", rate_text[32], eta[32] = "-";

    if (!is_progress_due(p, now, percent, is_final))
        return;
    p->last_shown_ms = now;
    p->last_decile = percent / 10;
    cli_fmt_bytes(have, have_text, sizeof(have_text));
    if (p->total >= 0)
        cli_fmt_bytes((uint64_t)p->total, total_text, sizeof(total_text));
    cli_fmt_bytes((uint64_t)rate, rate_text, sizeof(rate_text));
    if (rate > 0 && p->total >= 0 && (uint64_t)p->total >= have)
        cli_fmt_duration((double)((uint64_t)p->total - have) / rate, eta, sizeof(eta));
    if (p->is_tty) {
        char bar[BAR_WIDTH + 1];
        int filled = percent >= 0 ? percent * BAR_WIDTH / 100 : 0;
        for (int i = 0; i < BAR_WIDTH; i++)
            bar[i] = i < filled ? '#' : '-';
        bar[BAR_WIDTH] = '\0';
        if (percent >= 0)
            printf("\r[%s] %3d%%  %s / %s  %s/s  ETA %s\033[K", bar, percent, have_text,
                   total_text, rate_text, eta);
        else
            printf("\r%s  %s/s\033[K", have_text, rate_text);
        if (is_final)
            printf("\n");
    } else if (percent >= 0) {
        printf("%3d%%  %s of %s  %s/s  ETA %s\n", percent, have_text, total_text, rate_text,
               eta);
    } else {
        printf("%s  %s/s\n", have_text, rate_text);
    }
    fflush(stdout);
}

/* libcurl progress callback: shows progress; a signal stops the transfer. */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct pull *p = arg;

    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    if (interrupted)
        return 1;
    if (p->has_started)
        show_progress(p, false);
    return 0;
}

/* Runs one transfer of P's URL, from P->offset; returns its result, with the reason in
 * ERRBUF (CURL_ERROR_SIZE bytes). */
static CURLcode transfer(struct pull *p, char *errbuf)
{
    CURL *h = curl_easy_init();
    char range[48], if_range[VALIDATOR_MAX + 16];
    struct curl_slist *headers = NULL;
    CURLcode res;

    if (h == NULL)
        return CURLE_OUT_OF_MEMORY;
    p->easy = h;
    p->written = 0;
    p->has_started = false;
    p->status = 0;
    p->range_start = -1;
    p->range_total = -1;
    p->start_ms = ig_now_ms();
    p->last_shown_ms = p->is_tty ? 0 : p->start_ms;
    p->last_decile = -1;
    errbuf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, p->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, MAX_REDIRECTS);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, STALL_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "infergate-cli/" IG_VERSION);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, p);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, p);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, p);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    /* CURLOPT_RANGE rather than RESUME_FROM: libcurl fails a resume the server ignores,
     * where we want to take the whole file instead. */
    if (p->offset > 0) {
        snprintf(range, sizeof(range), "%llu-", (unsigned long long)p->offset);
        curl_easy_setopt(h, CURLOPT_RANGE, range);
    }
    if (p->offset == 0)
        p->sent_validator[0] = '\0';
    if (p->sent_validator[0] != '\0') {
        snprintf(if_range, sizeof(if_range), "If-Range: %s", p->sent_validator);
        headers = curl_slist_append(NULL, if_range);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    }
    res = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &p->status);
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    p->easy = NULL;
    return res;
}

/* Writes into NAME the file name URL ends with (no query or fragment); returns 0, or -1 when
 * it has none that is safe to use. */
static int name_from_url(const char *url, char *name, size_t size)
{
    const char *scheme = strstr(url, "://");
    const char *path = scheme != NULL ? strchr(scheme + 3, '/') : NULL;
    size_t len;
    const char *base;

    if (path == NULL)
        return -1;
    len = strcspn(path, "?#");
    base = path;
    for (size_t i = 0; i < len; i++)
        if (path[i] == '/')
            base = path + i + 1;
    len -= (size_t)(base - path);
    if (len == 0 || ig_percent_decode(base, len, false, name, size) < 0)
        return -1;
    if (name[0] == '\0' || name[0] == '.' || strchr(name, '/') != NULL)
        return -1;
    for (const char *c = name; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20)
            return -1;
    return 0;
}

/* Writes the lowercase hex sha256 of P's bytes into HEX (65 bytes); returns 0 or -1. */
static int finish_hash(struct pull *p, char *hex)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned n = 0;

    if (EVP_DigestFinal_ex(p->sha, digest, &n) != 1 || n != 32)
        return -1;
    for (unsigned i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    return 0;
}

/* Syncs FILE.part, checks it and renames it to FILE; returns the exit code. */
static int finish(struct pull *p)
{
    char hex[65], size_text[32], dir[PATH_MAX], *slash;
    uint64_t size = p->offset + p->written;
    int dir_fd;

    if (p->total >= 0 && size != (uint64_t)p->total) {
        fprintf(stderr, "infergate pull: incomplete: %llu of %lld bytes; run the same command "
                        "to resume\n", (unsigned long long)size, (long long)p->total);
        return 1;
    }
    if (finish_hash(p, hex) != 0 || fsync(p->fd) != 0) {
        fprintf(stderr, "infergate pull: cannot finish %s: %s\n", p->part, strerror(errno));
        return 1;
    }
    if (p->expected_sha256 != NULL && strcasecmp(hex, p->expected_sha256) != 0) {
        unlink(p->part);
        unlink(p->validator_path);
        fprintf(stderr, "infergate pull: sha256 mismatch for %s: expected %s, got %s; the "
                        "download was removed\n", p->url, p->expected_sha256, hex);
        return 1;
    }
    if (renameat2(AT_FDCWD, p->part, AT_FDCWD, p->path, p->is_force ? 0 : RENAME_NOREPLACE) !=
        0) {
        fprintf(stderr, "infergate pull: cannot rename %s to %s: %s%s\n", p->part, p->path,
                strerror(errno), errno == EEXIST ? " (--force replaces it)" : "");
        return 1;
    }
    unlink(p->validator_path);
    snprintf(dir, sizeof(dir), "%s", p->path);
    slash = strrchr(dir, '/');
    if (slash != NULL)
        slash[slash == dir ? 1 : 0] = '\0';
    dir_fd = open(slash != NULL ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
        fsync(dir_fd);
        close(dir_fd);
    }
    cli_fmt_bytes(size, size_text, sizeof(size_text));
    printf("saved %s (%s, sha256 %s%s)\n", p->path, size_text, hex,
           p->expected_sha256 != NULL ? ", verified" : "");
    return 0;
}

/* Parses ARGV into P; returns 0, or 2 after printing the problem. */
static int parse(struct pull *p, int argc, char **argv)
{
    const char *out = NULL, *dir = NULL;
    char name[NAME_MAX + 1];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && has_value) {
            out = argv[++i];
        } else if (strcmp(a, "--models-dir") == 0 && has_value) {
            dir = argv[++i];
        } else if (strcmp(a, "--sha256") == 0 && has_value) {
            p->expected_sha256 = argv[++i];
            if (strlen(p->expected_sha256) != 64 ||
                strspn(p->expected_sha256, "0123456789abcdefABCDEF") != 64) {
                fprintf(stderr, "infergate pull: --sha256: expected 64 hex digits\n");
                return 2;
            }
        } else if (strcmp(a, "--force") == 0 || strcmp(a, "-f") == 0) {
            p->is_force = true;
        } else if (a[0] != '-' && p->url == NULL) {
            p->url = a;
        } else {
            fprintf(stderr, "infergate pull: unexpected argument '%s'\n%s", a, usage_text);
            return 2;
        }
    }
    if (p->url == NULL || (out != NULL && dir != NULL)) {
        fprintf(stderr, "%s", usage_text);
        return 2;
    }
    if (strncmp(p->url, "http://", 7) != 0 && strncmp(p->url, "https://", 8) != 0) {
        fprintf(stderr, "infergate pull: only http:// and https:// URLs are supported\n");
        return 2;
    }
    if (out == NULL && name_from_url(p->url, name, sizeof(name)) != 0) {
        fprintf(stderr, "infergate pull: the URL names no file; give -o FILE\n");
        return 2;
    }
    if (out != NULL)
        snprintf(p->path, sizeof(p->path), "%s", out);
    else
        snprintf(p->path, sizeof(p->path), "%s/%s", dir != NULL ? dir : ".", name);
    if (strlen(p->path) + 1 >= sizeof(p->path)) {
        fprintf(stderr, "infergate pull: the file name is too long\n");
        return 2;
    }
    snprintf(p->part, sizeof(p->part), "%s.part", p->path);
    snprintf(p->validator_path, sizeof(p->validator_path), "%s.validator", p->part);
    return 0;
}

/* Opens and locks FILE.part, hashing what an earlier pull left in it; returns 0 or 1. */
static int open_part(struct pull *p)
{
    struct stat st;

    p->fd = open(p->part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (p->fd < 0) {
        fprintf(stderr, "infergate pull: cannot open %s: %s\n", p->part, strerror(errno));
        return 1;
    }
    if (flock(p->fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "infergate pull: another pull is writing %s\n", p->part);
        return 1;
    }
    p->is_locked = true;
    if (fstat(p->fd, &st) != 0 || EVP_DigestInit_ex(p->sha, EVP_sha256(), NULL) != 1) {
        fprintf(stderr, "infergate pull: %s: %s\n", p->part, strerror(errno));
        return 1;
    }
    p->offset = (uint64_t)st.st_size;
    if (p->offset > 0) {
        char have[32];
        cli_fmt_bytes(p->offset, have, sizeof(have));
        printf("resuming %s at %s\n", p->part, have);
        load_validator(p);
        if (hash_existing(p) != 0) {
            fprintf(stderr, "infergate pull: cannot read %s: %s\n", p->part, strerror(errno));
            return 1;
        }
    }
    return 0;
}

/* Runs the transfer, once more from byte 0 when the server refuses the range; returns the
 * exit code (0: FILE.part holds what the server sent). */
static int download(struct pull *p)
{
    char errbuf[CURL_ERROR_SIZE], have[32];
    CURLcode res = CURLE_OK;

    for (int attempt = 0; attempt < 2; attempt++) {
        p->is_changed = false;
        res = transfer(p, errbuf);
        if ((p->status != 416 && !p->is_changed) || p->offset == 0 || p->failure != NULL ||
            interrupted)
            break;
        if (!p->is_changed && p->range_total >= 0 && (uint64_t)p->range_total == p->offset) {
            p->total = p->range_total; /* FILE.part was complete already */
            return 0;
        }
        if (!p->is_changed)
            printf("the server refused to resume: starting over\n");
        if (start_over(p) != 0) {
            fprintf(stderr, "infergate pull: cannot empty %s: %s\n", p->part, strerror(errno));
            return 1;
        }
    }
    cli_fmt_bytes(p->offset + p->written, have, sizeof(have));
    if (p->is_tty && p->has_started && (interrupted || p->failure != NULL || res != CURLE_OK))
        printf("\n"); /* end the bar's line */
    fflush(stdout);
    if (interrupted) {
        fprintf(stderr, "infergate pull: interrupted; %s kept in %s, run the same command to "
                        "resume\n", have, p->part);
        return 130;
    }
    if (p->failure != NULL) {
        fprintf(stderr, "infergate pull: %s\n", p->failure);
        return 1;
    }
    if (res != CURLE_OK) {
        fprintf(stderr, "infergate pull: download failed: %s; %s kept in %s, run the same "
                        "command to resume\n", errbuf[0] != '\0' ? errbuf : curl_easy_strerror(res),
                have, p->part);
        return 1;
    }
    if (p->status != 200 && p->status != 206) {
        fprintf(stderr, "infergate pull: HTTP %ld from %s\n", p->status, p->url);
        return 1;
    }
    if (!p->has_started && p->status == 200 && p->offset > 0 && start_over(p) != 0)
        return 1; /* an empty file where FILE.part had bytes */
    if (!p->has_started && p->total < 0)
        p->total = (int64_t)p->offset;
    show_progress(p, true);
    return 0;
}

int cli_pull(int argc, char **argv)
{
    struct pull p = {.fd = -1, .total = -1, .is_tty = isatty(STDOUT_FILENO) == 1};
    struct sigaction sa = {.sa_handler = on_signal};
    struct stat st;
    int rc = parse(&p, argc, argv);

    if (rc != 0)
        return rc;
    rc = 1;
    if (!p.is_force && stat(p.path, &st) == 0) {
        fprintf(stderr, "infergate pull: %s exists; --force replaces it\n", p.path);
        goto out;
    }
    p.sha = EVP_MD_CTX_new();
    if (p.sha == NULL || open_part(&p) != 0)
        goto out;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    rc = download(&p);
    if (rc == 0)
        rc = finish(&p);
out:
    /* A failure that left nothing worth resuming leaves no file behind. */
    if (rc != 0 && p.is_locked && fstat(p.fd, &st) == 0 && st.st_size == 0) {
        unlink(p.part);
        unlink(p.validator_path);
    }
    if (p.fd >= 0)
        close(p.fd);
    EVP_MD_CTX_free(p.sha);
    free(p.failure);
    return rc;
}
