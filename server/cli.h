/* cli.h - the one-shot commands: inspect, prune, eval, run, token-hash */
#ifndef PRUNERD_CLI_H
#define PRUNERD_CLI_H

/* Each takes the arguments after the command name (argv[0] is the command)
 * and returns the process exit code: 0 done, 1 failed while running,
 * 2 bad usage or input (one line on stderr). */
int cli_inspect(int argc, char **argv);
int cli_prune(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_run(int argc, char **argv);
/* prunerd token-hash [--name NAME] [--role ROLE]: reads a secret on stdin
 * and prints the [tokens] line "NAME = ROLE:SHA256HEX". */
int cli_token_hash(int argc, char **argv);

#endif
