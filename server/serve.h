/* serve.h - the `prunerd serve` command */
#ifndef PRUNERD_SERVE_H
#define PRUNERD_SERVE_H

/* prunerd serve [flags]: argv[0] is "serve".  Returns the exit code. */
int serve_main(int argc, char **argv);

#endif
