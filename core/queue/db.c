/* db.c - SQLite connections: open, pragmas, migrations, fault hooks */
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "fsutil.h"

/*
 * DESIGN
 *
 * Durability.  The queue promises that a job row survives kill -9 and a
 * power cut once queue_submit has returned, so every connection runs
 * journal_mode=WAL with synchronous=FULL: each COMMIT fsyncs the WAL before
 * it returns.  (synchronous=NORMAL in WAL mode only fsyncs at checkpoints: a
 * power cut could lose the last commits, though never corrupt the file.)
 * busy_timeout (5000 ms by default) makes a connection wait for the write
 * lock instead of failing at once; foreign_keys is on for future tables.
 * Each thread opens its own struct db: SQLite connections are not shared.
 *
 * Migrations.  migrations/NNNN_name.sql are compiled into the binary by
 * tools/embed.py (a meson custom_target), so the daemon needs no files
 * beside it.  At open, every migration whose version schema_migrations does
 * not record runs, together with its record, in one BEGIN IMMEDIATE
 * transaction: a failure leaves neither half of it, and two processes
 * opening at once apply it once.
 *
 * THE RULE FOR ADDING A MIGRATION (as beanstalkd's dat.h does for Walver):
 * never edit, rename or renumber a migration that has been released (a
 * database somewhere has it recorded and will not run it again; db_migrate
 * refuses a recorded name that differs); add migrations/NNNN+1_name.sql,
 * list it in core/meson.build, and write it so it runs inside a
 * transaction (no VACUUM, no BEGIN/COMMIT, no PRAGMA journal_mode).  A
 * database that records a version this binary lacks was written by a newer
 * prunerd: it is refused rather than guessed at.  PostgreSQL's schema
 * follows the same rule in migrations/postgres/NNNN_name.sql (listed in
 * core/meson.build's pg_migration_files, applied by core/queue/queue_pg.c under
 * an advisory lock); a change to the jobs table needs one migration for
 * each backend.
 *
 * Fault hooks.  Tests pass struct db_hooks: the step hook stands in for
 * sqlite3_step/sqlite3_exec; the io hook sits in a VFS that wraps the
 * default one (registered under a name unique to this connection, removed
 * at close), so a simulated full disk or failed fsync reaches SQLite
 * itself, as in sqlite's own test/ioerr tests.
 */

struct fault_vfs {
    sqlite3_vfs base;  /* what SQLite sees; base.pAppData is this */
    sqlite3_vfs *real; /* the default VFS it forwards to */
    struct db_hooks hooks;
    char name[48];
};

struct fault_file {
    sqlite3_file base; /* pMethods: fault_io_methods */
    struct fault_vfs *fv;
    sqlite3_file *real; /* the real VFS's file, right after this struct */
};

struct db {
    sqlite3 *sql;
    struct db_hooks hooks;
    struct fault_vfs *vfs; /* NULL without an io hook */
    int injected;          /* the last step's code, if the step hook gave it */
};

/* ---- the fault-injecting VFS (only with an io hook) ---- */

#define REAL(f) (((struct fault_file *)(f))->real)

static int fault_io(sqlite3_file *f, enum db_io_op op)
{
    struct fault_file *ff = (struct fault_file *)f;
    return ff->fv->hooks.io ? ff->fv->hooks.io(ff->fv->hooks.ud, op) : 0;
}

static int ff_close(sqlite3_file *f)
{
    return REAL(f)->pMethods->xClose(REAL(f));
}
static int ff_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), buf, amt, off);
}
static int ff_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
    int rc = fault_io(f, DB_IO_WRITE);
    return rc ? rc : REAL(f)->pMethods->xWrite(REAL(f), buf, amt, off);
}
static int ff_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    int rc = fault_io(f, DB_IO_TRUNCATE);
    return rc ? rc : REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int ff_sync(sqlite3_file *f, int flags)
{
    int rc = fault_io(f, DB_IO_SYNC);
    return rc ? rc : REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int ff_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int ff_lock(sqlite3_file *f, int lock)
{
    return REAL(f)->pMethods->xLock(REAL(f), lock);
}
static int ff_unlock(sqlite3_file *f, int lock)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), lock);
}
static int ff_check_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int ff_file_control(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int ff_sector_size(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int ff_device_chars(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int ff_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
    const sqlite3_io_methods *m = REAL(f)->pMethods;
    return m->iVersion >= 2 ? m->xShmMap(REAL(f), pg, pgsz, extend, pp) : SQLITE_IOERR;
}
static int ff_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    const sqlite3_io_methods *m = REAL(f)->pMethods;
    return m->iVersion >= 2 ? m->xShmLock(REAL(f), offset, n, flags) : SQLITE_IOERR;
}
static void ff_shm_barrier(sqlite3_file *f)
{
    const sqlite3_io_methods *m = REAL(f)->pMethods;
    if (m->iVersion >= 2) m->xShmBarrier(REAL(f));
}
static int ff_shm_unmap(sqlite3_file *f, int del)
{
    const sqlite3_io_methods *m = REAL(f)->pMethods;
    return m->iVersion >= 2 ? m->xShmUnmap(REAL(f), del) : SQLITE_OK;
}
static int ff_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
    const sqlite3_io_methods *m = REAL(f)->pMethods;
    if (m->iVersion >= 3) return m->xFetch(REAL(f), off, amt, pp);
    *pp = NULL;
    return SQLITE_OK;
}
static int ff_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    const sqlite3_io_methods *m = REAL(f)->pMethods;
    return m->iVersion >= 3 ? m->xUnfetch(REAL(f), off, p) : SQLITE_OK;
}

static const sqlite3_io_methods fault_io_methods = {
    3,
    ff_close,
    ff_read,
    ff_write,
    ff_truncate,
    ff_sync,
    ff_file_size,
    ff_lock,
    ff_unlock,
    ff_check_reserved,
    ff_file_control,
    ff_sector_size,
    ff_device_chars,
    ff_shm_map,
    ff_shm_lock,
    ff_shm_barrier,
    ff_shm_unmap,
    ff_fetch,
    ff_unfetch,
};

#define FV(v) ((struct fault_vfs *)(v)->pAppData)

static int fv_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    struct fault_file *ff = (struct fault_file *)f;
    ff->fv = FV(v);
    ff->real = (sqlite3_file *)(ff + 1);
    int rc = FV(v)->real->xOpen(FV(v)->real, name, ff->real, flags, out_flags);
    ff->base.pMethods = ff->real->pMethods ? &fault_io_methods : NULL;
    return rc;
}
static int fv_delete(sqlite3_vfs *v, const char *name, int sync_dir)
{
    return FV(v)->real->xDelete(FV(v)->real, name, sync_dir);
}
static int fv_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
    return FV(v)->real->xAccess(FV(v)->real, name, flags, out);
}
static int fv_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out)
{
    return FV(v)->real->xFullPathname(FV(v)->real, name, n, out);
}
static void *fv_dl_open(sqlite3_vfs *v, const char *name)
{
    return FV(v)->real->xDlOpen(FV(v)->real, name);
}
static void fv_dl_error(sqlite3_vfs *v, int n, char *msg)
{
    FV(v)->real->xDlError(FV(v)->real, n, msg);
}
static void (*fv_dl_sym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
    return FV(v)->real->xDlSym(FV(v)->real, h, sym);
}
static void fv_dl_close(sqlite3_vfs *v, void *h)
{
    FV(v)->real->xDlClose(FV(v)->real, h);
}
static int fv_randomness(sqlite3_vfs *v, int n, char *out)
{
    return FV(v)->real->xRandomness(FV(v)->real, n, out);
}
static int fv_sleep(sqlite3_vfs *v, int us)
{
    return FV(v)->real->xSleep(FV(v)->real, us);
}
static int fv_current_time(sqlite3_vfs *v, double *out)
{
    return FV(v)->real->xCurrentTime(FV(v)->real, out);
}
static int fv_get_last_error(sqlite3_vfs *v, int n, char *out)
{
    return FV(v)->real->xGetLastError ? FV(v)->real->xGetLastError(FV(v)->real, n, out) : 0;
}
static int fv_current_time_int64(sqlite3_vfs *v, sqlite3_int64 *out)
{
    sqlite3_vfs *r = FV(v)->real;
    if (r->iVersion >= 2 && r->xCurrentTimeInt64) return r->xCurrentTimeInt64(r, out);
    double d;
    int rc = r->xCurrentTime(r, &d);
    *out = (sqlite3_int64)(d * 86400000.0);
    return rc;
}

/* Registers a VFS forwarding to the default one with hooks; NULL on failure. */
static struct fault_vfs *fault_vfs_create(const struct db_hooks *hooks)
{
    sqlite3_vfs *real = sqlite3_vfs_find(NULL);
    if (!real) return NULL;
    struct fault_vfs *fv = calloc(1, sizeof *fv);
    if (!fv) return NULL;
    fv->real = real;
    fv->hooks = *hooks;
    snprintf(fv->name, sizeof fv->name, "prunerd-fault-%p", (void *)fv);
    sqlite3_vfs *b = &fv->base;
    b->iVersion = 2;
    b->szOsFile = (int)sizeof(struct fault_file) + real->szOsFile;
    b->mxPathname = real->mxPathname;
    b->zName = fv->name;
    b->pAppData = fv;
    b->xOpen = fv_open;
    b->xDelete = fv_delete;
    b->xAccess = fv_access;
    b->xFullPathname = fv_full_pathname;
    b->xDlOpen = fv_dl_open;
    b->xDlError = fv_dl_error;
    b->xDlSym = fv_dl_sym;
    b->xDlClose = fv_dl_close;
    b->xRandomness = fv_randomness;
    b->xSleep = fv_sleep;
    b->xCurrentTime = fv_current_time;
    b->xGetLastError = fv_get_last_error;
    b->xCurrentTimeInt64 = fv_current_time_int64;
    if (sqlite3_vfs_register(b, 0) != SQLITE_OK) {
        free(fv);
        return NULL;
    }
    return fv;
}

static void fault_vfs_destroy(struct fault_vfs *fv)
{
    if (!fv) return;
    sqlite3_vfs_unregister(&fv->base);
    free(fv);
}

/* ---- statements ---- */

int db_fail(struct db *db, int rc, const char *what, char *err, size_t errlen)
{
    if (db->injected && db->injected == rc)
        return err_set(err, errlen, ERR_DB, "%s: %s (SQLite code %d, injected)", what,
                       sqlite3_errstr(rc), rc);
    int code = sqlite3_extended_errcode(db->sql);
    if (code == SQLITE_OK || code == SQLITE_ROW || code == SQLITE_DONE)
        return err_set(err, errlen, ERR_DB, "%s: %s (SQLite code %d)", what, sqlite3_errstr(rc),
                       rc);
    return err_set(err, errlen, ERR_DB, "%s: %s (SQLite code %d)", what, sqlite3_errmsg(db->sql),
                   code);
}

int db_prepare(struct db *db, const char *sql, sqlite3_stmt **st, char *err, size_t errlen)
{
    *st = NULL;
    db->injected = 0;
    int rc = sqlite3_prepare_v2(db->sql, sql, -1, st, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(*st);
        *st = NULL;
        return db_fail(db, rc, "prepare", err, errlen);
    }
    return 0;
}

int db_step(struct db *db, sqlite3_stmt *st)
{
    db->injected = 0;
    if (db->hooks.step) {
        int rc = db->hooks.step(db->hooks.ud, sqlite3_sql(st));
        if (rc) {
            db->injected = rc;
            return rc;
        }
    }
    return sqlite3_step(st);
}

int db_exec(struct db *db, const char *sql, char *err, size_t errlen)
{
    db->injected = 0;
    if (db->hooks.step) {
        int rc = db->hooks.step(db->hooks.ud, sql);
        if (rc) {
            db->injected = rc;
            return db_fail(db, rc, sql, err, errlen);
        }
    }
    int rc = sqlite3_exec(db->sql, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        char what[64];
        snprintf(what, sizeof what, "%.48s", sql); /* migrations are long: name the start */
        for (char *p = what; *p; p++)
            if (*p == '\n') *p = ' ';
        return db_fail(db, rc, what, err, errlen);
    }
    return 0;
}

int db_begin(struct db *db, char *err, size_t errlen)
{
    return db_exec(db, "BEGIN IMMEDIATE", err, errlen);
}

int db_commit(struct db *db, char *err, size_t errlen)
{
    return db_exec(db, "COMMIT", err, errlen);
}

void db_rollback(struct db *db)
{
    /* After SQLITE_FULL, IOERR or NOMEM SQLite may have rolled back already. */
    if (!sqlite3_get_autocommit(db->sql)) sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
}

sqlite3 *db_handle(struct db *db)
{
    return db->sql;
}

/* ---- migrations ---- */

/* Checks what schema_migrations records against list: every recorded
 * version must be in list under the same name. */
static int migrations_check(struct db *db, const struct db_migration *list, size_t n, char *err,
                            size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = db_prepare(db, "SELECT version, name FROM schema_migrations ORDER BY version", &st,
                        err, errlen);
    if (rc) return rc;
    int s;
    while ((s = db_step(db, st)) == SQLITE_ROW) {
        int version = sqlite3_column_int(st, 0);
        const char *name = (const char *)sqlite3_column_text(st, 1);
        size_t i;
        for (i = 0; i < n && list[i].version != version; i++)
            ;
        if (i == n) {
            rc = err_set(err, errlen, ERR_DB,
                         "the database records migration %04d_%s, which this prunerd does not "
                         "have: it was written by a newer prunerd",
                         version, name ? name : "?");
            goto out;
        }
        if (!name || strcmp(name, list[i].name)) {
            rc = err_set(err, errlen, ERR_DB,
                         "the database records migration %04d as '%s' but this prunerd has "
                         "'%s' (an applied migration was renamed)",
                         version, name ? name : "?", list[i].name);
            goto out;
        }
    }
    if (s != SQLITE_DONE) rc = db_fail(db, s, "read schema_migrations", err, errlen);
out:
    sqlite3_finalize(st);
    return rc;
}

/* Applies one migration with its record, unless recorded; one transaction. */
static int migration_apply(struct db *db, const struct db_migration *m, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int in_txn = 0;
    int rc = db_begin(db, err, errlen);
    if (rc) goto out;
    in_txn = 1;
    if ((rc =
             db_prepare(db, "SELECT 1 FROM schema_migrations WHERE version = ?", &st, err, errlen)))
        goto out;
    sqlite3_bind_int(st, 1, m->version);
    int s = db_step(db, st);
    if (s != SQLITE_ROW && s != SQLITE_DONE) {
        rc = db_fail(db, s, "read schema_migrations", err, errlen);
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (s == SQLITE_ROW) goto commit; /* another connection applied it first */
    if ((rc = db_exec(db, m->sql, err, errlen))) {
        char why[256];
        snprintf(why, sizeof why, "%s", err ? err : "");
        rc = err_set(err, errlen, ERR_DB, "migration %04d_%s: %s", m->version, m->name, why);
        goto out;
    }
    if ((rc = db_prepare(db,
                         "INSERT INTO schema_migrations (version, name, applied_at) "
                         "VALUES (?, ?, ?)",
                         &st, err, errlen)))
        goto out;
    sqlite3_bind_int(st, 1, m->version);
    sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 3, fs_now());
    if ((s = db_step(db, st)) != SQLITE_DONE) {
        rc = db_fail(db, s, "record migration", err, errlen);
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
commit:
    if ((rc = db_commit(db, err, errlen))) goto out;
    in_txn = 0;
out:
    sqlite3_finalize(st);
    if (in_txn) db_rollback(db);
    return rc;
}

int db_migrate(struct db *db, const struct db_migration *list, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        if (list[i].version <= (i ? list[i - 1].version : 0))
            return err_set(err, errlen, ERR_INTERNAL, "migration %04d_%s is out of order",
                           list[i].version, list[i].name);
    int rc = db_exec(db,
                     "CREATE TABLE IF NOT EXISTS schema_migrations ("
                     "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)",
                     err, errlen);
    if (rc) return rc;
    if ((rc = migrations_check(db, list, n, err, errlen))) return rc;
    for (size_t i = 0; i < n; i++)
        if ((rc = migration_apply(db, &list[i], err, errlen))) return rc;
    return 0;
}

/* ---- open / close ---- */

/* Runs a pragma that answers one row and checks the answer when want is set. */
static int db_pragma(struct db *db, const char *sql, const char *want, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = db_prepare(db, sql, &st, err, errlen);
    if (rc) return rc;
    int s = db_step(db, st);
    if (s != SQLITE_ROW && s != SQLITE_DONE) {
        rc = db_fail(db, s, sql, err, errlen);
    } else if (want) {
        const char *got = s == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
        if (!got || strcmp(got, want))
            rc = err_set(err, errlen, ERR_DB, "%s: got '%s', want '%s'", sql, got ? got : "", want);
    }
    sqlite3_finalize(st);
    return rc;
}

struct db *db_open(const char *path, const struct db_options *opt, char *err, size_t errlen)
{
    if (!path || !*path) {
        err_set(err, errlen, ERR_INVALID, "no database path");
        return NULL;
    }
    struct db *db = calloc(1, sizeof *db);
    if (!db) {
        err_set(err, errlen, ERR_NOMEM, "out of memory");
        return NULL;
    }
    int busy_ms = opt && opt->busy_timeout_ms > 0 ? opt->busy_timeout_ms : 5000;
    if (opt && opt->hooks) {
        db->hooks = *opt->hooks;
        if (opt->hooks->io && !(db->vfs = fault_vfs_create(opt->hooks))) {
            err_set(err, errlen, ERR_DB, "cannot register the fault VFS");
            goto fail;
        }
    }
    int rc = sqlite3_open_v2(path, &db->sql, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                             db->vfs ? db->vfs->name : NULL);
    if (rc != SQLITE_OK) {
        err_set(err, errlen, ERR_DB, "open %s: %s", path,
                db->sql ? sqlite3_errmsg(db->sql) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(db->sql, 1);
    /* The busy timeout first: switching to WAL needs a lock another
     * connection may hold. */
    sqlite3_busy_timeout(db->sql, busy_ms);
    if (db_pragma(db, "PRAGMA journal_mode=WAL", "wal", err, errlen) ||
        db_pragma(db, "PRAGMA synchronous=FULL", NULL, err, errlen) ||
        db_pragma(db, "PRAGMA foreign_keys=ON", NULL, err, errlen) ||
        db_pragma(db, "PRAGMA synchronous", "2", err, errlen) ||
        db_pragma(db, "PRAGMA foreign_keys", "1", err, errlen))
        goto fail;
    const struct db_migration *list = db_migrations;
    size_t n = db_migration_count;
    if (opt && opt->migrations) {
        list = opt->migrations;
        n = opt->migration_count;
    }
    if (db_migrate(db, list, n, err, errlen)) goto fail;
    return db;
fail:
    db_close(db);
    return NULL;
}

void db_close(struct db *db)
{
    if (!db) return;
    if (db->sql) {
        db_rollback(db);
        /* Every statement is finalized where it was prepared, so this closes. */
        sqlite3_close(db->sql);
    }
    fault_vfs_destroy(db->vfs);
    free(db);
}
