/* serve.h - the `prunerd serve` and `prunerd token-hash` commands */
#ifndef PRUNERD_SERVE_H
#define PRUNERD_SERVE_H

/* prunerd serve [flags]: argv[0] is "serve".  Returns the exit code. */
int serve_main(int argc, char **argv);

/* prunerd token-hash [--name NAME] [--role ROLE]: reads a secret on stdin
 * and prints the [tokens] line "NAME = ROLE:SHA256HEX". */
int token_hash_main(int argc, char **argv);

#endif
