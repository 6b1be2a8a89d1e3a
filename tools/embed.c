/* embed.c - build-time helper: turns a file into a C array (for api/openapi.json) */
#include <stdio.h>
#include <stdlib.h>

/* usage: embed INPUT OUTPUT SYMBOL -> const char SYMBOL[] (NUL-terminated), SYMBOL_len */
int main(int argc, char **argv)
{
    FILE *in, *out;
    int c;
    unsigned long n = 0;

    if (argc != 4) {
        fprintf(stderr, "usage: embed INPUT OUTPUT SYMBOL\n");
        return 2;
    }
    if (!(in = fopen(argv[1], "rb")) || !(out = fopen(argv[2], "w"))) {
        perror("embed");
        return 1;
    }
    fprintf(out,
            "/* generated from %s by tools/embed.c; do not edit */\n#include <stddef.h>\n"
            "const char %s[] = {\n",
            argv[1], argv[3]);
    while ((c = fgetc(in)) != EOF) {
        fprintf(out, "%d,%s", c, ++n % 20 ? "" : "\n");
    }
    fprintf(out, "0};\nconst size_t %s_len = %lu;\n", argv[3], n);
    if (ferror(in) || fclose(out)) {
        perror("embed");
        return 1;
    }
    fclose(in);
    return 0;
}
