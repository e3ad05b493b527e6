/* config.json parsing: a good BERT config, every bad-key case (each must give one error
 * naming the file and the key), the built-in shapes, and save -> load round trip. */
#include <stdio.h>
#include <string.h>
#include "core/model/config.h"
#include "tests/testutil.h"

static char path[4200];

static void write_file(const char *text) {
  snprintf(path, sizeof path, "%s/config.json", af_test_tmpdir());
  FILE *f = fopen(path, "w");
  if (!f) { perror(path); af_test_failures++; return; }
  fputs(text, f);
  fclose(f);
}

#define GOOD_HEAD "{\"model_type\":\"bert\",\"hidden_size\":384,\"num_hidden_layers\":6,\"num_attention_heads\":12,"
#define GOOD_SIZES "\"intermediate_size\":1536,\"vocab_size\":30522,\"max_position_embeddings\":512"

static void test_good(void) {
  write_file(GOOD_HEAD GOOD_SIZES ",\"type_vocab_size\":2,\"layer_norm_eps\":1e-12,\"hidden_act\":\"gelu\","
             "\"hidden_dropout_prob\":0.1,\"attention_probs_dropout_prob\":0.05,\"classifier_dropout\":null,"
             "\"pad_token_id\":0,\"architectures\":[\"BertModel\"],\"position_embedding_type\":\"absolute\"}");
  af_config c;
  CHECK_OK(af_config_load(path, &c));
  CHECK(c.hidden_size == 384 && c.num_hidden_layers == 6 && c.num_attention_heads == 12);
  CHECK(c.intermediate_size == 1536 && c.vocab_size == 30522 && c.max_position_embeddings == 512);
  CHECK(c.type_vocab_size == 2 && c.layer_norm_eps == 1e-12f && c.hidden_act == AF_GELU_ERF);
  CHECK(c.hidden_dropout_prob == 0.1f && c.attention_probs_dropout_prob == 0.05f);
  CHECK(c.classifier_dropout < 0 && c.initializer_range == 0.02f && c.num_labels == 0 && c.pad_token_id == 0);
  CHECK(!strcmp(c.model_type, "bert"));

  /* Defaults, tanh GELU, labels from id2label (wins over num_labels), missing model_type. */
  write_file("{\"hidden_size\":32,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"intermediate_size\":64,"
             "\"vocab_size\":128,\"max_position_embeddings\":64,\"hidden_act\":\"gelu_new\",\"num_labels\":7,"
             "\"id2label\":{\"0\":\"neg\",\"1\":\"pos\",\"2\":\"neu\"},\"classifier_dropout\":0.2,"
             "\"initializer_range\":0.05,\"pad_token_id\":null}");
  CHECK_OK(af_config_load(path, &c));
  CHECK(c.hidden_act == AF_GELU_TANH && c.num_labels == 3 && c.type_vocab_size == 2);
  CHECK(c.classifier_dropout == 0.2f && c.initializer_range == 0.05f && c.layer_norm_eps == 1e-12f);
  CHECK(!strcmp(c.model_type, "bert"));

  write_file(GOOD_HEAD GOOD_SIZES ",\"hidden_act\":\"gelu_pytorch_tanh\",\"num_labels\":1}");
  CHECK_OK(af_config_load(path, &c));
  CHECK(c.hidden_act == AF_GELU_TANH && c.num_labels == 1);
}

/* body: the JSON; key: what the message must mention; st: the expected status. */
static void expect_bad(const char *body, const char *key, af_status want) {
  write_file(body);
  af_config c;
  af_clear_error();
  af_status s = af_config_load(path, &c);
  const char *msg = af_last_error();
  if (s != want || !strstr(msg, "config.json") || !strstr(msg, key) || strchr(msg, '\n')) {
    af_test_failures++;
    fprintf(stderr, "bad config (%s) gave %s, message: %s\n  body: %s\n", key, af_status_name(s), msg, body);
  } else {
    printf("  ok: %s\n", msg);
  }
}

static void test_bad(void) {
  const char *tail = ",\"intermediate_size\":1536,\"vocab_size\":30522,\"max_position_embeddings\":512}";
  char b[1024];
#define HEAD_WITH(hs) "{\"hidden_size\":" hs ",\"num_hidden_layers\":6,\"num_attention_heads\":12"
  snprintf(b, sizeof b, HEAD_WITH("\"384\"") "%s", tail);
  expect_bad(b, "'hidden_size': expected a positive integer, found the string \"384\"", AF_ERR_FORMAT);
  snprintf(b, sizeof b, HEAD_WITH("0") "%s", tail);
  expect_bad(b, "'hidden_size': expected a positive integer, found 0", AF_ERR_FORMAT);
  snprintf(b, sizeof b, HEAD_WITH("-384") "%s", tail);
  expect_bad(b, "'hidden_size'", AF_ERR_FORMAT);
  snprintf(b, sizeof b, HEAD_WITH("384.5") "%s", tail);
  expect_bad(b, "'hidden_size'", AF_ERR_FORMAT);
  snprintf(b, sizeof b, HEAD_WITH("null") "%s", tail);
  expect_bad(b, "found null", AF_ERR_FORMAT);
  snprintf(b, sizeof b, HEAD_WITH("[384]") "%s", tail);
  expect_bad(b, "found an array", AF_ERR_FORMAT);
  snprintf(b, sizeof b, HEAD_WITH("100") "%s", tail);
  expect_bad(b, "multiple of num_attention_heads", AF_ERR_FORMAT);
  expect_bad("{\"hidden_size\":384,\"num_attention_heads\":12,\"intermediate_size\":1536,\"vocab_size\":30522,"
             "\"max_position_embeddings\":512}",
             "'num_hidden_layers': expected a positive integer, found nothing", AF_ERR_FORMAT);
  expect_bad(GOOD_HEAD "\"vocab_size\":30522,\"max_position_embeddings\":512}", "'intermediate_size'", AF_ERR_FORMAT);
  expect_bad(GOOD_HEAD "\"intermediate_size\":1536,\"max_position_embeddings\":512}", "'vocab_size'", AF_ERR_FORMAT);
  expect_bad(GOOD_HEAD "\"intermediate_size\":1536,\"vocab_size\":30522}", "'max_position_embeddings'", AF_ERR_FORMAT);
  expect_bad(GOOD_HEAD GOOD_SIZES ",\"type_vocab_size\":0}", "'type_vocab_size'", AF_ERR_FORMAT);
  expect_bad(GOOD_HEAD GOOD_SIZES ",\"layer_norm_eps\":0}", "'layer_norm_eps'", AF_ERR_FORMAT);
  expect_bad(GOOD_HEAD GOOD_SIZES ",\"layer_norm_eps\":\"1e-12\"}", "'layer_norm_eps'", AF_ERR_FORMAT);
  expect_bad(GOOD_HEAD GOOD_SIZES ",\"hidden_dropout_prob\":1.5}", "'hidden_dropout_prob'", AF_ERR_FORMAT);
  expect_bad(GOOD_HEAD GOOD_SIZES ",\"attention_probs_dropout_prob\":-0.1}", "'attention_probs_dropout_prob'",
             AF_ERR_FORMAT);
  expect_bad(GOOD_HEAD GOOD_SIZES ",\"classifier_dropout\":\"x\"}", "'classifier_dropout'", AF_ERR_FORMAT);
  expect_bad(GOOD_HEAD GOOD_SIZES ",\"initializer_range\":-1}", "'initializer_range'", AF_ERR_FORMAT);
  expect_bad(GOOD_HEAD GOOD_SIZES ",\"hidden_act\":\"relu\"}", "'hidden_act': 'relu' is not supported",
             AF_ERR_UNSUPPORTED);
  expect_bad(GOOD_HEAD GOOD_SIZES ",\"hidden_act\":1}", "'hidden_act'", AF_ERR_FORMAT);
  expect_bad("{\"model_type\":\"roberta\",\"hidden_size\":768}", "'model_type': 'roberta' is not supported",
             AF_ERR_UNSUPPORTED);
  expect_bad(GOOD_HEAD GOOD_SIZES ",\"position_embedding_type\":\"relative_key\"}", "'position_embedding_type'",
             AF_ERR_UNSUPPORTED);
  expect_bad(GOOD_HEAD GOOD_SIZES ",\"num_labels\":-2}", "'num_labels'", AF_ERR_FORMAT);
  expect_bad(GOOD_HEAD GOOD_SIZES ",\"id2label\":[\"a\",\"b\"]}", "'id2label'", AF_ERR_FORMAT);
  expect_bad(GOOD_HEAD GOOD_SIZES ",\"pad_token_id\":\"0\"}", "'pad_token_id'", AF_ERR_FORMAT);
  expect_bad("{\"hidden_size\": 384,\n  \"num_hidden_layers\": 6,,\n}", "config.json:2: not valid JSON", AF_ERR_FORMAT);
  expect_bad("[1,2]", "expected a JSON object", AF_ERR_FORMAT);
  expect_bad("", "not valid JSON", AF_ERR_FORMAT);

  af_config c;
  char nope[4300];
  snprintf(nope, sizeof nope, "%s/nope/config.json", af_test_tmpdir());
  af_status s = af_config_load(nope, &c);
  CHECK(s == AF_ERR_IO && strstr(af_last_error(), nope));
}

static void test_named_and_roundtrip(void) {
  af_config c, d;
  CHECK_OK(af_config_named("tiny", &c));
  CHECK(c.num_hidden_layers == 2 && c.hidden_size == 32 && c.num_attention_heads == 4 && c.intermediate_size == 64 &&
        c.vocab_size == 128 && c.max_position_embeddings == 64 && c.type_vocab_size == 2 &&
        c.layer_norm_eps == 1e-12f && c.hidden_act == AF_GELU_ERF);
  CHECK_OK(af_config_check(&c, NULL));
  CHECK_OK(af_config_named("minilm-l6", &c));
  CHECK(c.num_hidden_layers == 6 && c.hidden_size == 384 && c.num_attention_heads == 12 &&
        c.intermediate_size == 1536 && c.vocab_size == 30522 && c.max_position_embeddings == 512);
  CHECK_OK(af_config_named("bert-base", &c));
  CHECK(c.num_hidden_layers == 12 && c.hidden_size == 768 && c.num_attention_heads == 12 &&
        c.intermediate_size == 3072 && c.vocab_size == 30522 && c.max_position_embeddings == 512);
  CHECK(af_config_named("gpt2", &c) == AF_ERR_ARG && strstr(af_last_error(), "gpt2"));

  /* Round trip, with labels and a tanh GELU; regression sets problem_type. */
  for (int nl = 0; nl <= 3; nl++) {
    CHECK_OK(af_config_named("tiny", &c));
    c.num_labels = nl;
    c.hidden_act = nl == 2 ? AF_GELU_TANH : AF_GELU_ERF;
    c.classifier_dropout = nl == 3 ? 0.25f : -1.0f;
    c.hidden_dropout_prob = 0.1f;
    snprintf(path, sizeof path, "%s/saved-%d.json", af_test_tmpdir(), nl);
    CHECK_OK(af_config_save(path, &c));
    CHECK_OK(af_config_load(path, &d));
    CHECK(memcmp(&c, &d, sizeof c) == 0);
    FILE *f = fopen(path, "r");
    char text[4096] = "";
    if (f) {
      size_t n = fread(text, 1, sizeof text - 1, f);
      text[n] = 0;
      fclose(f);
    }
    CHECK(strstr(text, "\"model_type\":\t\"bert\"") != NULL);
    CHECK(strstr(text, "\"hidden_dropout_prob\":\t0.1,") != NULL);  /* shortest float, not 0.100000001 */
    if (nl > 0) CHECK(strstr(text, "BertForSequenceClassification") && strstr(text, "\"LABEL_0\"") &&
                      strstr(text, "id2label") && strstr(text, "label2id"));
    if (nl == 1) CHECK(strstr(text, "\"regression\"") != NULL);
    if (nl != 1) CHECK(strstr(text, "\"regression\"") == NULL);
  }
  /* Saving an inconsistent config refuses. */
  CHECK_OK(af_config_named("tiny", &c));
  c.num_attention_heads = 5;
  CHECK(af_config_save(path, &c) == AF_ERR_FORMAT);
}

int main(void) {
  test_good();
  test_bad();
  test_named_and_roundtrip();
  return af_test_done("test_config");
}
