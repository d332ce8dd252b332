/* libFuzzer target: the configuration loader (src/config.c) from a buffer,
 * and the router compiled from any configuration it accepts. Every error
 * path must return diagnostics without leaking or crashing. */
#include <stdint.h>
#include <stdio.h>

#include "ferry/config.h"
#include "ferry/router.h"
#include "fuzz_common.h"

/* Never resolve names while fuzzing. */
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res) {
  (void)node, (void)service, (void)hints, (void)res;
  return EAI_NONAME;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct config *cfg = NULL;
  struct config_diag d = {0};
  int r = config_load_string("fuzz.yaml", (const char *)data, size, &cfg, &d);
  for (size_t i = 0; i < d.n; i++)
    if (!d.msgs[i] || strncmp(d.msgs[i], "fuzz.yaml", 9) != 0)
      abort(); /* every diagnostic names the file */
  if (r == 0) {
    if (!cfg)
      abort();
    struct router *rt = router_new(cfg);
    router_free(rt);
    config_free(cfg);
  } else if (cfg || d.nerrors == 0) {
    abort(); /* failure always says why */
  }
  config_diag_free(&d);
  return 0;
}
