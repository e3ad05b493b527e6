/* `autofreeze export RUN_CHECKPOINT OUT_DIR`: a run's checkpoint as a Hugging Face model
 * folder (config.json with num_labels, vocab.txt, model.safetensors with the classifier). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/model/checkpoint.h"
#include "core/cli/cli.h"
#include "core/run/train_ckpt.h"

int af_cli_export(int argc, char **argv) {
  if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
    printf("usage: autofreeze export RUN_CHECKPOINT OUT_DIR\n\n"
           "RUN_CHECKPOINT is a run's checkpoint folder (OUT.h5.ckpt, or --checkpoint-dir).\n"
           "Writes OUT_DIR/config.json, vocab.txt and model.safetensors in the layout of Hugging Face's\n"
           "BertForSequenceClassification, loadable by transformers and by autofreeze.\n");
    return AF_EXIT_OK;
  }
  if (argc != 3) {
    fprintf(stderr, "usage: autofreeze export RUN_CHECKPOINT OUT_DIR\n");
    return AF_EXIT_USAGE;
  }
  char model_dir[4096], path[4200], labels[8192];
  int nl = 0;
  if (af_train_ckpt_info(argv[1], model_dir, sizeof model_dir, &nl, labels, sizeof labels) != AF_OK)
    return af_cli_report("export");
  af_config cfg;
  snprintf(path, sizeof path, "%s/config.json", model_dir);
  if (af_config_load(path, &cfg) != AF_OK) {
    af_error_prefix("the checkpoint's base model: ");
    return af_cli_report("export");
  }
  cfg.num_labels = nl;
  /* the task's label names for id2label (one per line in the checkpoint), when all are there */
  const char *names[512];
  int nn = 0;
  for (char *p = labels, *e; *p && nn < 512; p = e + 1) {
    e = strchr(p, '\n');
    names[nn++] = p;
    if (!e) break;
    *e = 0;
  }
  if (nn == nl && nl > 1) cfg.label_names = names;
  af_param_layout lay;
  if (af_param_layout_build(&cfg, nl, &lay) != AF_OK) return af_cli_report("export");
  float *p = malloc(lay.total * sizeof *p);
  af_status s = p ? af_train_ckpt_params(argv[1], p, lay.total) : AF_FAIL(AF_ERR_NOMEM, "out of memory");
  if (s == AF_OK) s = af_checkpoint_save(argv[2], model_dir, &cfg, &lay, p);
  free(p);
  af_param_layout_free(&lay);
  if (s != AF_OK) return af_cli_report("export");
  printf("exported %s -> %s (%d labels)\n", argv[1], argv[2], nl);
  return AF_EXIT_OK;
}
