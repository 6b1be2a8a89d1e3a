/* main.c - prunerd: the command line and the daemon's start-up */
#include <stdio.h>
#include <string.h>

#include "serve.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: prunerd <command> [options]\n"
                 "commands:\n"
                 "  version   print versions\n"
                 "  serve     run the daemon (prunerd serve --help)\n"
                 "  token-hash  hash an API token for the config's [tokens]\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "version")) {
        printf("prunerd %s\n", PRUNERD_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "serve")) return serve_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "token-hash")) return token_hash_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "prunerd: unknown command '%s' (see prunerd help)\n", argv[1]);
    return 2;
}
