/* Links libwalrouter through the installed CMake package and uses it. */
#include <stdio.h>
#include <string.h>
#include <walrouter.h>

int main(void) {
    wr_options o = {0};
    char err[128];
    if (wr_options_set(&o, "read_budget_ms", "50", err, sizeof err) != WR_OK) return 1;
    if (strcmp(wr_status_name(WR_ERR_TIMEOUT), "timeout") != 0) return 2;
    printf("walrouter %s: %u\n", WR_VERSION, o.read_budget_ms);
    return 0;
}
