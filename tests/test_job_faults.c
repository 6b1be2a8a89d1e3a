/* test_job_faults.c - a job whose fsync or write fails leaves no artifact behind; outputs and eval
 * a run refuses */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "ct.h"
#include "err.h"
#include "fsutil.h"
#include "job.h"

static int fsync_calls_left;

static int failing_fsync(int fd)
{
    (void)fd;
    if (fsync_calls_left-- > 0) return 0;
    errno = EIO;
    return -1;
}

static ssize_t full_write(int fd, const void *buf, size_t n)
{
    (void)fd, (void)buf, (void)n;
    errno = ENOSPC;
    return -1;
}

/* The names in dir, space-separated, into out. */
static void list_dir(const char *dir, char *out, size_t len)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    out[0] = '\0';
    while (d && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(out + strlen(out), len - strlen(out), "%s ", e->d_name);
    }
    if (d) closedir(d);
}

/* Runs the seed's global L1 on model into out_dir; extra: more request
 * fields ("" or ", \"key\": value"). */
static int run_job_with(const char *model, const char *extra, const char *out_dir, char *err,
                        size_t errlen)
{
    char text[1024];
    snprintf(text, sizeof text,
             "{\"model\": \"%s\", \"targets\": [\"bert.encoder.layer.*.attention.self.query\"],"
             " \"method\": \"l1_unstructured\", \"amount\": 0.3, \"scope\": \"global\"%s}",
             model, extra);
    json_t *raw = json_loads(text, 0, NULL), *req = NULL, *result = NULL;
    struct job_spec spec;
    struct job_field_error fe;
    struct job_hooks hooks = {.threads = 1};
    int rc = job_request_normalize(raw, &req, &spec, &fe);
    if (!rc) rc = job_execute(&spec, req, out_dir, &hooks, &result, err, errlen);
    json_decref(raw);
    json_decref(req);
    json_decref(result);
    job_spec_free(&spec);
    return rc;
}

static int run_job(const char *model, const char *out_dir, char *err, size_t errlen)
{
    return run_job_with(model, "", out_dir, err, errlen);
}

int main(void)
{
    const char *tests = getenv("PRUNERD_TESTS");
    char tmp[] = "/tmp/prunerd-job-faults-XXXXXX", cmd[2048], model[512], out[512], names[1024];
    char err[512];
    if (!tests || !mkdtemp(tmp)) {
        CHECK(0, "PRUNERD_TESTS is not set or no temp dir");
        return ct_done("test_job_faults");
    }
    snprintf(model, sizeof model, "%s/tiny.pt", tmp);
    const char *py = getenv("PRUNERD_PYTHON");
    snprintf(cmd, sizeof cmd,
             "'%s' %s/../tools/make_bert.py %s --layers 1 --hidden 32 --heads 2 --ffn 64 --vocab "
             "200 >/dev/null 2>&1",
             py ? py : "(PRUNERD_PYTHON unset)", tests, model);
    if (!py || system(cmd) != 0) {
        CHECK(0, "could not make a model with PRUNERD_PYTHON (a Python with torch): %s", cmd);
        return ct_done("test_job_faults");
    }

    /* The first fsync fails: the first artifact is never renamed into place. */
    snprintf(out, sizeof out, "%s/fsync", tmp);
    fs_hooks.fsync = failing_fsync;
    fsync_calls_left = 0;
    int rc = run_job(model, out, err, sizeof err);
    fs_hooks.fsync = NULL;
    CHECK(rc == ERR_IO, "failing fsync: rc %d (%s)", rc, err);
    CHECK(strstr(err, "fsync") != NULL, "message '%s' names fsync", err);
    list_dir(out, names, sizeof names);
    CHECK(names[0] == '\0', "failing fsync left '%s'", names);

    /* The disk fills up while result.json is written: no result.json and no
     * temporary file; the finished checkpoints stand complete on their own. */
    snprintf(out, sizeof out, "%s/full", tmp);
    fs_hooks.write = full_write;
    rc = run_job(model, out, err, sizeof err);
    fs_hooks.write = NULL;
    CHECK(rc == ERR_NOSPACE, "disk full: rc %d (%s)", rc, err);
    list_dir(out, names, sizeof names);
    CHECK(!strstr(names, "result.json") && !strstr(names, ".tmp."), "disk full left '%s'", names);

    /* A killed run's temporary files are cleared by the next run. */
    snprintf(cmd, sizeof cmd, "%s/.model.pt.tmp.1.deadbeef", out);
    int fd = open(cmd, O_CREAT | O_WRONLY, 0644);
    CHECK(fd >= 0, "create %s", cmd);
    if (fd >= 0) close(fd);
    rc = run_job(model, out, err, sizeof err);
    CHECK(rc == 0, "clean run: rc %d (%s)", rc, err);
    list_dir(out, names, sizeof names);
    /* No outputs said: the input's family, TorchScript and its state_dict. */
    CHECK(strstr(names, "result.json") && strstr(names, "model.pt ") &&
              strstr(names, "model.pth") && !strstr(names, ".tmp."),
          "after a clean run: '%s'", names);

    /* safetensors is not written from TorchScript: refused at load, no artifact made. */
    snprintf(out, sizeof out, "%s/safetensors", tmp);
    rc = run_job_with(model, ", \"outputs\": [\"torchscript\", \"safetensors\"]", out, err,
                      sizeof err);
    CHECK(rc == ERR_INVALID && !strncmp(err, "outputs: ", 9) && strstr(err, "TorchScript"),
          "safetensors: rc %d (%s)", rc, err);
    list_dir(out, names, sizeof names);
    CHECK(!strstr(names, "model") && !strstr(names, "result.json"), "safetensors: '%s' was made",
          names);
    /* No eval.vocab and no model folder to take one from. */
    snprintf(out, sizeof out, "%s/novocab", tmp);
    rc = run_job_with(model, ", \"eval\": {\"data\": \"dev.txt\", \"classes\": \"class.txt\"}", out,
                      err, sizeof err);
    CHECK(rc == ERR_INVALID && !strcmp(err, "eval.vocab: is required (the model is no Hugging Face "
                                            "folder with a vocab.txt)"),
          "no vocab: rc %d (%s)", rc, err);
    list_dir(out, names, sizeof names);
    CHECK(names[0] == '\0', "no vocab left '%s'", names);
    /* One output asked for: only that one. */
    snprintf(out, sizeof out, "%s/sd-only", tmp);
    rc = run_job_with(model, ", \"outputs\": [\"state_dict\"]", out, err, sizeof err);
    list_dir(out, names, sizeof names);
    CHECK(rc == 0 && strstr(names, "model.pth") && !strstr(names, "model.pt "),
          "state_dict only: rc %d (%s), '%s'", rc, err, names);

    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return ct_done("test_job_faults");
}
