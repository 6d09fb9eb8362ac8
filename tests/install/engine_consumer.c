/* Links only the engine through the installed CMake package. */
#include <stdio.h>
#include <walrouter_engine.h>

int main(void) {
    wr_lsn lsn = 0;
    char buf[WR_LSN_BUFSIZE];
    if (wr_lsn_parse("16/B374D848", &lsn) != 0) return 1;
    wr_lsn_format(lsn, buf);
    printf("engine: %s\n", buf);
    return 0;
}
