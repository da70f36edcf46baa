/* Shared by src/batch only: ids, the files directory and the file rows (batch_files.c). */
#ifndef IG_BATCH_INTERNAL_H
#define IG_BATCH_INTERNAL_H

#include "auth.h"
#include "ig_error.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gw_app;
struct sqlite3;
struct sqlite3_stmt;

#define BATCH_ID_MAX 64        /* longest file or batch id */
#define BATCH_PATH_MAX 4096
#define BATCH_FILE_PATH_MAX (BATCH_PATH_MAX + BATCH_ID_MAX + 8) /* a directory and an id */

/* Who asks: the caller's key name, and whether it sees every key's files and batches. */
struct batch_who {
    char owner[AUTH_NAME_MAX];
    bool is_admin;
};

/* Writes a new random id PREFIX + 24 hex digits into OUT (SIZE bytes). */
void batch_new_id(const char *prefix, char *out, size_t size);

/* Returns whether ID is a plausible id (1..BATCH_ID_MAX of A-Z a-z 0-9 _ -). */
bool batch_id_ok(const char *id);

/* Writes into OUT the directory of file contents: "files" beside the database. */
void batch_files_dir(struct gw_app *app, char *out, size_t size);

/* Fills WHO from APP's routed caller. */
void batch_who_of(struct gw_app *app, struct batch_who *who);

/* Writer thread: stores DATA (LEN bytes) as file ID under DIR (created when missing) and
 * its row; 0 or IG_EIO. */
int batch_db_file_write(struct sqlite3 *db, const char *dir, const char *id, const char *owner,
                        const char *filename, const char *purpose, const char *data, size_t len,
                        int64_t created_at) IG_WUR;

/* Writer thread: returns file ID's object when WHO may see it (caller owns), else NULL. */
json_t *batch_db_file_get(struct sqlite3 *db, const char *id, const struct batch_who *who);

/* Runs SQL (parameters: ID, the owner, whether WHO is admin) and returns ROW of its first
 * row (caller owns), or NULL when there is none. */
json_t *batch_db_get_owned(struct sqlite3 *db, const char *sql, const char *id,
                           const struct batch_who *who, json_t *(*row)(struct sqlite3_stmt *st));

/* Writer thread: reads the content of file ID under DIR (at most MAX_BYTES) into *DATA
 * (caller frees) and *LEN; 0, IG_ENOENT or IG_ETOOBIG. */
int batch_db_file_read(const char *dir, const char *id, size_t max_bytes, char **data,
                       size_t *len) IG_WUR;

#endif
