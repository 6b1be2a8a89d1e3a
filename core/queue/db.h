/* db.h - SQLite connections: open, pragmas, migrations, fault hooks */
#ifndef PRUNERD_DB_H
#define PRUNERD_DB_H

#include <stddef.h>

#include <sqlite3.h>

/* One migration: migrations/NNNN_name.sql compiled in by tools/embed.py. */
struct db_migration {
    int version;      /* NNNN: 1, 2, 3... */
    const char *name; /* the file name's _name part */
    const char *sql;  /* the file, run in one transaction */
};
extern const struct db_migration db_migrations[]; /* generated: migrations.c */
extern const size_t db_migration_count;

/* What a struct db_hooks io hook is asked about. */
enum db_io_op { DB_IO_WRITE, DB_IO_SYNC, DB_IO_TRUNCATE };

/*
 * Replaced by tests to simulate failures (beanstalkd's falloc).  Each hook
 * returns 0 to let the call happen, or an SQLite result code that the call
 * then returns instead.  NULL hooks are not called.
 */
struct db_hooks {
    void *ud;
    /* Before each sqlite3_step / sqlite3_exec that db.c and queue.c make,
     * except ROLLBACK (sql is the statement's text): e.g. SQLITE_BUSY. */
    int (*step)(void *ud, const char *sql);
    /* Before each write, fsync or truncate of the database, its WAL or its
     * journal, in a VFS wrapping the default one: e.g. SQLITE_FULL,
     * SQLITE_IOERR_WRITE, SQLITE_IOERR_FSYNC.  So SQLite itself meets the
     * failure and runs its own recovery. */
    int (*io)(void *ud, enum db_io_op op);
};

struct db_options {
    int busy_timeout_ms;                   /* <= 0: 5000 */
    const struct db_hooks *hooks;          /* NULL: none (copied by db_open) */
    const struct db_migration *migrations; /* NULL: the embedded db_migrations */
    size_t migration_count;
};

struct db;

/*
 * Opens (creating) the database at path: WAL, synchronous=FULL, busy
 * timeout, foreign keys, then the migrations (db_migrate).  opt
 * may be NULL.  Returns NULL with a message on failure (nothing left open).
 * One struct db per thread.
 */
struct db *db_open(const char *path, const struct db_options *opt, char *err, size_t errlen);
void db_close(struct db *db); /* NULL: no-op */
sqlite3 *db_handle(struct db *db);

/*
 * Applies the migrations of list (ascending versions) not yet recorded in
 * schema_migrations, each with its record in one BEGIN IMMEDIATE
 * transaction.  ERR_DB when the database records a version this list does
 * not have under the same name, or a newer one (a newer prunerd wrote it).
 */
int db_migrate(struct db *db, const struct db_migration *list, size_t n, char *err, size_t errlen);

/* sqlite3_prepare_v2; ERR_DB with a message naming what on failure. */
int db_prepare(struct db *db, const char *sql, sqlite3_stmt **st, char *err, size_t errlen);
/* sqlite3_step through the step hook: returns SQLite's code (SQLITE_ROW,
 * SQLITE_DONE, or an error for db_fail). */
int db_step(struct db *db, sqlite3_stmt *st);
/* sqlite3_exec (no callback) through the step hook: 0 or ERR_DB. */
int db_exec(struct db *db, const char *sql, char *err, size_t errlen);

/* BEGIN IMMEDIATE (waits busy_timeout for the write lock) and COMMIT:
 * 0 or ERR_DB.  db_rollback rolls back whatever transaction is open (after
 * an error SQLite may already have) and is never hooked. */
int db_begin(struct db *db, char *err, size_t errlen);
int db_commit(struct db *db, char *err, size_t errlen);
void db_rollback(struct db *db);

/* Writes "what: SQLite's message (code)" for the rc a db_step returned and
 * returns ERR_DB. */
int db_fail(struct db *db, int rc, const char *what, char *err, size_t errlen);

#endif
