/* main.c - prunerd: the command line and the daemon's start-up */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "serve.h"
#include "torch_shim.h"

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"inspect", cli_inspect, "parameter names, shapes, dtypes and sparsity of a model"},
    {"prune", cli_prune, "prune a model's parameters and save it"},
    {"eval", cli_eval, "evaluate a classifier on THUCNews-format data"},
    {"run", cli_run, "run one pruning job (evaluate, prune, evaluate, save) from JSON"},
    {"serve", serve_main, "run the daemon: REST API, SQLite queue, workers (serve --help)"},
    {"token-hash", cli_token_hash, "hash an API token (stdin) into a [tokens] config line"},
    {NULL, NULL, NULL},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: prunerd <command> [options]\ncommands:\n");
    for (const struct command *c = commands; c->name; c++)
        fprintf(out, "  %-9s %s\n", c->name, c->help);
    fprintf(out, "  %-9s %s\n", "version", "print versions");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    for (const struct command *c = commands; c->name; c++)
        if (!strcmp(argv[1], c->name)) return c->run(argc - 1, argv + 1);
    if (!strcmp(argv[1], "version")) {
        char cuda[32];
        if (ts_cuda_compiled(cuda, sizeof cuda)) {
            int n = ts_cuda_device_count();
            printf("prunerd %s (libtorch %s, CUDA %s compiled in, %d CUDA device%s)\n",
                   PRUNERD_VERSION, ts_libtorch_version(), cuda, n, n == 1 ? "" : "s");
        } else {
            printf("prunerd %s (libtorch %s, CUDA not compiled in)\n", PRUNERD_VERSION,
                   ts_libtorch_version());
        }
        return 0;
    }
    if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "prunerd: unknown command '%s' (see prunerd help)\n", argv[1]);
    return 2;
}
