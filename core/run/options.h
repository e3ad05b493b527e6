/* The run options: one table (core/run/options.c) names every option of a training run
 * with its type, default, allowed values, unit and help line, and whether it shapes the
 * run's trajectory. It drives `autofreeze train`'s parser and --help, the keys of Lua's
 * af.train{}, the results file's /config attributes and the identity a checkpoint must
 * match to be resumed. Adding an option is one row here plus the code that uses it
 * (docs/architecture.md). */
#ifndef AF_OPTIONS_H
#define AF_OPTIONS_H
#include <stddef.h>
#include <stdio.h>
#include "core/base/status.h"

struct af_train_opts;

typedef enum {
  AF_OPT_STR,     /* text (a path, a column list) */
  AF_OPT_INT,     /* an integer in [lo, hi] */
  AF_OPT_NUM,     /* a real number in [lo, hi] */
  AF_OPT_BOOL,    /* true/false (CLI: --name / --no-name) */
  AF_OPT_CHOICE,  /* one of choices[], stored as its index */
  AF_OPT_SIZE,    /* bytes, "512M", "4G" */
  AF_OPT_PERIOD   /* how often: N (steps), Ns/Nm/Nh (training time) or "intervals" (af_period) */
} af_opt_kind;

/* how the value is stored in af_train_opts */
typedef enum { AF_CT_INT, AF_CT_LONG, AF_CT_U64, AF_CT_SIZE, AF_CT_FLOAT, AF_CT_DOUBLE, AF_CT_STR, AF_CT_PERIOD } af_opt_ctype;

/* A period (AF_OPT_PERIOD): every `every` optimizer steps, every `every` seconds of training
 * time (af_run_train_time), or at every interval boundary. */
typedef enum { AF_PERIOD_STEPS = 0, AF_PERIOD_SECONDS, AF_PERIOD_INTERVALS } af_period_kind;
typedef struct {
  int kind;      /* af_period_kind */
  double every;  /* steps (a whole number >= 1) or seconds (> 0); unused for intervals */
} af_period;

enum {
  AF_OPT_TRAJECTORY = 1 << 0,  /* changes what the run computes: a resume must agree on it */
  AF_OPT_REQUIRED = 1 << 1,    /* a run needs it */
  AF_OPT_AUTO = 1 << 2,        /* BOOL, INT: also "auto" (stored as -1; a size_t field: SIZE_MAX) */
  AF_OPT_RECIPE = 1 << 3,      /* an optimizer setting: unset (-1) means the recipe's value */
  AF_OPT_POSITIVE = 1 << 4,    /* NUM: lo is excluded */
  AF_OPT_UNSET_NEG = 1 << 5,   /* unset is stored as -1 (def_help says what that means) */
  AF_OPT_WARMUP = 1 << 6,      /* NUM (a double): also "warmup", stored as -1 */
  AF_OPT_IDENT_SET = 1 << 7,   /* in the identity only when not at its default, so checkpoints from
                                  before the option existed keep theirs (af_opts_identity_complete) */
  AF_OPT_BELOW_HI = 1 << 8,    /* NUM: hi is excluded */
};

typedef struct {
  const char *name;            /* Lua key; CLI --name with '-' for '_'; results attribute */
  const char *alias;           /* another accepted name (older spelling), or NULL */
  af_opt_kind kind;
  af_opt_ctype ctype;
  size_t offset;               /* in af_train_opts */
  const char *def;             /* default as text (NULL: empty / zero / unset) */
  const char *def_help;        /* what --help shows as the default, when def does not say it */
  double lo, hi;               /* INT, NUM: allowed range */
  const char *const *choices;  /* CHOICE: NULL-terminated names; the stored value is the index */
  const char *bool_true;       /* CHOICE: the choice that `true` stands for (Lua cache = true) */
  const char *metavar;         /* CLI value name */
  const char *unit;            /* "steps", "examples", "bytes", ... or NULL */
  const char *group;           /* --help section */
  const char *help;
  const char *attr;            /* results attribute when not name */
  const char *ident;           /* key in the checkpoint identity; NULL: not in it (flag TRAJECTORY:
                                  checked another way, e.g. seed and epochs by their own check) */
  unsigned flags;
} af_opt;

extern const af_opt af_opts[];
extern const int af_opts_count;

/* The row for a name: Lua key or alias ("max_len"), or a CLI name without its dashes
 * ("max-depth"). NULL when unknown. */
const af_opt *af_opt_find(const char *name);

/* Parse text into o's field. On a bad value: AF_ERR_ARG with a message that does not name
 * the option ("expects an integer >= 1, got 'x'"), so that each front-end prefixes the
 * name as its user wrote it and the rest reads the same from the CLI and from Lua. */
af_status af_opt_set(const af_opt *opt, struct af_train_opts *o, const char *text);

/* The field's value as text ("" for an unset string, "recipe" for an unset optimizer
 * setting), in the form af_opt_set reads back. */
void af_opt_get(const af_opt *opt, const struct af_train_opts *o, char *buf, size_t cap);

/* A NUM row's value, exactly as stored (a float widened, not printed and parsed). */
double af_opt_number(const af_opt *opt, const struct af_train_opts *o);

/* Every row's default into o (af_train_opts_default calls this). */
void af_opts_defaults(struct af_train_opts *o);

/* The options together: what no single row can say (--batch a multiple of --accum, a
 * static policy's --frozen, ...). AF_ERR_ARG naming the options. */
af_status af_opts_check(const struct af_train_opts *o);

/* --help text for the options, grouped by section. */
void af_opts_help(FILE *f);

/* The same as a Markdown table (key, CLI, default, meaning), as docs/lua-api.md holds it. */
void af_opts_markdown(FILE *f);

/* The run's identity for checkpoints: "key=value;..." over the rows with an ident key, in
 * table order, from resolved options; the policy row contributes policy= and
 * policy_knobs= from the run's policy. */
void af_opts_identity(const struct af_train_opts *resolved, const char *policy, const char *knobs, char *buf,
                      size_t cap);
/* An identity (af_opts_identity's, or a checkpoint's) with "key=default" added for every
 * AF_OPT_IDENT_SET row it leaves out, so two identities compare key by key both ways. */
void af_opts_identity_complete(const char *in, char *out, size_t cap);

/* The name as a CLI user writes it: "--max-depth" (buf of at least 64 bytes). */
const char *af_opt_cli_name(const af_opt *opt, char *buf, size_t cap);

/* The index of s in a NULL-terminated name table (the *_names below), or -1. */
int af_choice_index(const char *const *names, const char *s);

/* Names of the enums the options choose from (one spelling everywhere). */
extern const char *const af_recipe_names[];   /* "hf", "paper", "reference" */
extern const char *const af_device_names[];   /* "cpu", "cuda", "auto" */
extern const char *const af_format_names[];   /* "auto", "tsv", "csv" */
extern const char *const af_precision_names[];        /* "fp32", "bf16", "auto" (af_precision + auto) */
extern const char *const af_frozen_precision_names[]; /* "fp32", "bf16" */

#endif
