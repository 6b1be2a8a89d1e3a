/* targets.h - which parameters a list of target globs names */
#ifndef PRUNERD_TARGETS_H
#define PRUNERD_TARGETS_H

#include <stddef.h>
#include <stdint.h>

#include "torch_shim.h"

/*
 * A target is a glob over parameter names with Python fnmatch semantics
 * ("*" matches any run of characters, dots included; "?" one; "[...]" a
 * set).  A glob that names a module means its "weight" parameter, so
 * "bert.encoder.layer.*.attention.self.query" selects the query weights.
 * Only parameters (not buffers) are targets.
 *
 * Writes the model indices of the matched parameters, each once, in model
 * order, into *idx (malloc'd, caller frees) and their count into *n.  A glob
 * that matches nothing, or a match that is not floating point, is
 * ERR_INVALID; *bad gets the index of the glob at fault (or -1).
 */
int targets_resolve(const struct ts_model *m, char *const *globs, size_t nglobs, size_t **idx,
                    size_t *n, long *bad, char *err, size_t errlen);

/*
 * The encoder layers the globs select, for structured pruning: a glob
 * selects layer N when it matches the layer's module
 * ("bert.encoder.layer.N"), or a module or parameter in it.  Sets
 * selected[0..nlayers).  A glob that selects none is ERR_INVALID, *bad its
 * index.
 */
int targets_layers(const struct ts_model *m, char *const *globs, size_t nglobs, int nlayers,
                   uint8_t *selected, long *bad, char *err, size_t errlen);

/* The encoder layer index in a name like "bert.encoder.layer.11.x", or -1. */
long targets_layer_index(const char *name);

#endif
